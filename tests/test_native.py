"""The extension builds, links libcurl, and imports."""

import os

import dltc
from dltc import _native


def test_version_matches_package_metadata():
    from importlib.metadata import version

    assert dltc.__version__ == _native.version()
    if not os.environ.get("DLTC_EXPECT_ASAN"):
        assert dltc.__version__ == version("dltc")


def test_curl_version_is_real_libcurl():
    v = _native.curl_version()
    assert v.startswith("libcurl/")
    # Debian's libcurl4-openssl-dev: TLS through OpenSSL, and the decoders dltc asks for.
    assert "OpenSSL" in v
    assert "zlib" in v


def test_exceptions_are_the_documented_builtins():
    assert issubclass(dltc.JSONDecodeError, ValueError)
    assert issubclass(dltc.FetchError, OSError)


def test_asan_build_is_the_one_loaded_when_expected():
    # Under `make test-asan` the sanitized extension must be the one imported.
    if os.environ.get("DLTC_EXPECT_ASAN"):
        assert "build/asan" in os.path.realpath(_native.__file__)
