"""generators.data.secrets: every URL form of a credential is found, and masked in text."""

from __future__ import annotations

import pytest

from generators.data.secrets import MASK, find_credentials, redact

SECRET = "s3cr3tT0ken"
# (URL holding SECRET, what find_credentials names)
CARRIERS = [
    (f"https://{SECRET}@mlflow.example.com/", "user info"),
    (f"https://user:{SECRET}@mlflow.example.com:5000/api", "user info"),
    (f"http://{SECRET}:x-oauth-basic@host/", "user info"),
    (f"postgresql://app:{SECRET}@db.internal:5432/sales", "user info"),
    (f"simplecache::s3://{SECRET}@bucket/key.parquet", "user info"),
    (f"https://host/data.csv?token={SECRET}", "'token'"),
    (f"https://host/data.csv?x=1&Access_Token={SECRET}", "'Access_Token'"),
    (f"https://host/v1?api_key={SECRET}#frag", "'api_key'"),
    (f"az://container/blob.parquet?sv=2024-01-01&sig={SECRET}", "'sig'"),
    (f"s3://bucket/k?X-Amz-Credential=AKIA&X-Amz-Signature={SECRET}", "'X-Amz-Credential'"),
    (f"gs://bucket/k?X-Goog-Signature={SECRET}", "'X-Goog-Signature'"),
    (f"https://host/?password={SECRET}", "'password'"),
]
CLEAN = [
    "sqlite:///mlflow.db",
    "sqlite:////tmp/a@b/mlflow.db",  # an @ in the path is no user info
    "https://mlflow.example.com:5000/",
    "s3://bucket/people/someone@example.com.parquet",
    "file:///tmp/out",
    "/data/plain/path.csv",
    "https://host/data.csv?version=3&format=csv",
    "memory://bucket/x",
]


@pytest.mark.parametrize(("url", "named"), CARRIERS)
def test_every_credential_form_is_found_and_named_without_the_secret(url, named):
    found = find_credentials(url)
    assert found is not None and named in found
    assert SECRET not in found


@pytest.mark.parametrize("url", CLEAN)
def test_urls_without_credentials_pass(url):
    assert find_credentials(url) is None
    assert redact(url) == url


@pytest.mark.parametrize(("url", "named"), CARRIERS)
def test_redact_masks_the_secret_inside_any_text(url, named):
    text = f"error: cannot reach {url} (connection refused); also see '{url}'"
    masked = redact(text)
    assert SECRET not in masked
    assert masked.count(MASK) >= 2
    # What is not secret stays readable: the text around the URL, the host.
    assert masked.startswith("error: cannot reach ") and "connection refused" in masked
    host = url.split("::")[-1].split("://", 1)[1].split("@")[-1].split("/")[0].split("?")[0]
    assert host in masked


# data.path and output.dir take fsspec URLs; a database URL is another key's.
FSSPEC_CARRIERS = [(url, named) for url, named in CARRIERS if not url.startswith("postgresql")]


@pytest.mark.parametrize(("url", "named"), FSSPEC_CARRIERS)
def test_data_and_output_urls_with_any_credential_are_refused_before_use(url, named):
    from generators.data.remote import check_url
    from generators.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        check_url(url, "data.path")
    message = str(caught.value)
    assert message.startswith("data.path: the URL holds") and SECRET not in message


def test_an_unknown_protocol_message_does_not_repeat_a_secret():
    from generators.data.remote import check_url
    from generators.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown protocol") as caught:
        check_url(f"nosuchfs://{SECRET}@host/x", "output.dir")
    assert SECRET not in str(caught.value)
