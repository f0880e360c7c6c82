"""The use cases, one entry point per front door: the edit service and the batch door. Imports
the domain and the adapters, never the HTTP edge."""
