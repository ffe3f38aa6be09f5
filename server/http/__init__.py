"""The server's HTTP component: the integration API for the company's own systems and the web
console for IT admins and auditors, on their own address (`[http] listen`, off by default),
over TLS 1.3 with the server certificate. Both call the same router as protocol connections,
so the same policy decides and the same handlers archive."""
