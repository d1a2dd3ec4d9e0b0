"""Leaving the host, whatever the protocol: the egress address a session binds to and the
budget key it shares (`egress`), and the backoff between attempts. Neutral ground, so that
`exchange` (REST sources) and `archive` (bulk files) are siblings that import neither other.
"""
