"""The DMP side: the IHE ITI-41 wire format (ebRIM, SOAP 1.2, MTOM/XOP) and the client."""
