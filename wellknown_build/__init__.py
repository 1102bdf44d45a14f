"""Render and publish OpenID discovery documents and JWKS as static files."""
