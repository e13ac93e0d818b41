"""The HTTP routes, one module per resource: thin, they validate at the edge, call the service
and shape the response."""
