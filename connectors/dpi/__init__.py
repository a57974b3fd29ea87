"""The DPI side: the five relations of the DPI contract and a synthetic DPI that fills them."""
