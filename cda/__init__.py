"""The clinical-document domain: the INS, the codes, the CDA R2 level-1 builder and its checks.

This package imports nothing else of the project, so it can be used (and tested) on its own.
"""
