"""The web console of `govhub serve`: auditor, office and directory pages over the same services.

Layout: `html` (the one escaping layer and the page frame), `auth` (key-signed sign-in,
sessions, CSRF), `app` (the aiohttp application, its security headers, the `console` service),
`audit_pages`, `office`, `directory` (one module per audience), `static/` (CSS and the
in-browser proof verifier). docs/console.md describes the pages; docs/security.md the sign-in.
"""
