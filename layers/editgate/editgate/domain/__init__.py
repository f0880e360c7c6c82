"""The edit's domain: requests, plans, results, the catalog, normalization, images and the Lambda
envelope's rules. Pure: no I/O, no settings, no clock; imports nothing else of editgate."""
