"""ITI-41 on the wire: ebRIM metadata, SOAP 1.2 + WS-Addressing + VIHF, MTOM/XOP packaging, responses.

Shared by the DMP client and the mock DMP (`connectors.dmp_mock`), so both speak exactly the same
dialect. Each module owns one layer:

    vocabulary   namespaces, XDS UUIDs and URNs
    ebrim        DocumentEntry / SubmissionSet  <->  ProvideAndRegisterDocumentSetRequest
    vihf         the VIHF SAML 2.0 assertion: build and read
    soap         the SOAP 1.2 envelope, its headers and faults; the hardened XML parser
    mtom         multipart/related (XOP) packaging, both ways
    response     RegistryResponse: build and read
    request      a whole ITI-41 request from built documents
"""

from __future__ import annotations
