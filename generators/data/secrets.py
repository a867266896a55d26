"""Credentials in URLs: found before a run starts, and masked in anything that is printed.

A run's config is logged everywhere (MLflow params and the `config.yaml` artifact,
Prefect's flow-run parameters and logs, the published run folder), so a URL in it must
not carry a secret in any form:

- user info: `https://user:password@host/`, and a bare token as the user,
  `https://TOKEN@host/` (GitHub's and many proxies' form) — any user info is refused, not
  only a password, since a name alone cannot be told from a token;
- credentials in the query: `?token=…`, `?access_token=…`, `?api_key=…`, an Azure SAS
  (`?sv=…&sig=…`), a presigned S3 URL (`X-Amz-Signature`, `X-Amz-Credential`,
  `X-Amz-Security-Token`), a GCS signed URL (`X-Goog-Signature`, `X-Goog-Credential`);
- each part of a chained fsspec URL (`simplecache::s3://…`).

`find_credentials` says what a URL holds (for a one-line refusal that never repeats the
secret); `redact` masks every URL inside a free text (a message, a log line, a tag value)
as defence in depth, for URLs that reach us from places a check cannot stop first (an
exception's text, the environment).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

MASK = "***"
# Query keys that carry a credential, compared lower-cased.
SECRET_QUERY_KEYS = frozenset(
    {
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "auth",
        "auth_token",
        "authorization",
        "api_key",
        "apikey",
        "api-key",
        "key",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "pwd",
        "sig",
        "signature",
        "credential",
        "credentials",
        "session_token",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
    }
)
# scheme://[userinfo@]rest, up to the next whitespace or quote: what a URL in a text looks like.
_URL_IN_TEXT = re.compile(r"""(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>[^\s'"<>`]+)""")


def find_credentials(url: str) -> str | None:
    """What credential `url` carries ("user info", "a 'token' query parameter"), or None.

    Every part of a chained URL (`a::b`) is looked at; a string that is no URL has none.
    """
    for part in str(url).split("::"):
        if "://" not in part:
            continue
        try:
            parts = urlsplit(part)
        except ValueError:  # an unparsable netloc (e.g. a bad IPv6 literal) still has an @
            return "user info" if "@" in part.split("://", 1)[1].split("/", 1)[0] else None
        if "@" in parts.netloc:
            return "user info (a user name, token or password before '@')"
        for key, _ in parse_qsl(parts.query, keep_blank_values=True):
            if key.lower() in SECRET_QUERY_KEYS:
                return f"a '{key}' query parameter"
    return None


def redact(text: str) -> str:
    """`text` with the user info and credential query values of every URL in it masked."""
    return _URL_IN_TEXT.sub(_redact_match, str(text))


def _redact_match(match: re.Match) -> str:
    scheme, rest = match.group("scheme"), match.group("rest")
    end = re.search(r"[/?#]", rest)
    authority, remainder = (rest, "") if end is None else (rest[: end.start()], rest[end.start() :])
    if "@" in authority:
        authority = f"{MASK}@{authority.rsplit('@', 1)[1]}"
    return f"{scheme}{authority}{_redact_query(remainder)}"


def _redact_query(remainder: str) -> str:
    """The path, query and fragment after a URL's authority, credential values masked."""
    path, sep, query = remainder.partition("?")
    if not sep:
        return remainder
    query, hash_sep, fragment = query.partition("#")
    pairs = []
    for pair in query.split("&"):
        key, eq, _ = pair.partition("=")
        pairs.append(f"{key}{eq}{MASK}" if eq and key.lower() in SECRET_QUERY_KEYS else pair)
    return f"{path}?{'&'.join(pairs)}{hash_sep}{fragment}"
