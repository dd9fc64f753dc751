#!/usr/bin/env python3
"""Get access tokens from an Entra ID authority with Microsoft's own, unmodified
Python libraries, and print them as one JSON object on stdout.

Three tokens are obtained with the client-credentials flow and a certificate:

* msal_ps256     -- msal.ConfidentialClientApplication given the private key and
                    the public certificate (no thumbprint): MSAL computes the
                    SHA-256 thumbprint and signs the client assertion with PS256,
                    header ``x5t#S256`` (plus ``x5c``). With ``--ps256-via pfx``
                    MSAL is given a PKCS#12 file instead (made at run time in a
                    temp dir): PS256, ``x5t#S256``, no ``x5c``.
* msal_rs256     -- msal.ConfidentialClientApplication given the private key and
                    a SHA-1 thumbprint: RS256, header ``x5t``.
* azure_identity -- azure.identity.CertificateCredential given a PEM file holding
                    key and certificate (it passes a SHA-1 thumbprint to MSAL, so
                    RS256 with ``x5t``).

TLS trust comes from the environment (REQUESTS_CA_BUNDLE / SSL_CERT_FILE).
Any failure ends the script with a non-zero exit and the error on stderr.
"""

import argparse
import json
import os
import sys
import tempfile
from importlib.metadata import version

import msal
from azure.identity import CertificateCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12


class TokenError(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--authority-host", required=True,
                   help="e.g. https://127.0.0.1:7611 (no tenant)")
    p.add_argument("--tenant", required=True, help="tenant id (GUID)")
    p.add_argument("--client-id", required=True, help="application (client) id")
    p.add_argument("--cert-pem", required=True, help="public certificate, PEM")
    p.add_argument("--key-pem", required=True, help="unencrypted private key, PEM")
    p.add_argument("--scope", required=True, help="e.g. https://host/env/.default")
    p.add_argument("--ps256-via", choices=("pem", "pfx"), default="pem",
                   help="credential shape for the PS256 token (default: pem)")
    return p.parse_args(argv)


def msal_token(authority, client_id, client_credential, scope, label):
    app = msal.ConfidentialClientApplication(
        client_id,
        authority=authority,
        client_credential=client_credential,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[scope])
    if "access_token" not in result:
        raise TokenError("%s: %s" % (label, json.dumps(result, indent=2)))
    return result["access_token"]


def main(argv=None):
    args = parse_args(argv)
    host = args.authority_host.rstrip("/")
    authority = "%s/%s" % (host, args.tenant)

    with open(args.cert_pem, "rb") as f:
        cert_bytes = f.read()
    with open(args.key_pem, "rb") as f:
        key_bytes = f.read()
    cert = x509.load_pem_x509_certificate(cert_bytes)
    key = serialization.load_pem_private_key(key_bytes, password=None)
    cert_pem = cert_bytes.decode("ascii")
    key_pem = key_bytes.decode("ascii")
    sha1_hex = cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 (x5t is SHA-1)

    out = {}
    with tempfile.TemporaryDirectory(prefix="dvhost-tokens-") as tmp:
        # 1. MSAL, PS256 + x5t#S256.
        if args.ps256_via == "pfx":
            pfx_path = os.path.join(tmp, "client.pfx")
            with open(pfx_path, "wb") as f:
                f.write(pkcs12.serialize_key_and_certificates(
                    b"client", key, cert, None, serialization.NoEncryption()))
            ps256_credential = {"private_key_pfx_path": pfx_path}
        else:
            ps256_credential = {"private_key": key_pem, "public_certificate": cert_pem}
        out["msal_ps256"] = msal_token(
            authority, args.client_id, ps256_credential, args.scope, "msal_ps256")

        # 2. MSAL, RS256 + x5t (SHA-1 thumbprint given explicitly).
        out["msal_rs256"] = msal_token(
            authority, args.client_id,
            {"private_key": key_pem, "thumbprint": sha1_hex},
            args.scope, "msal_rs256")

        # 3. azure-identity CertificateCredential, from one PEM with key + cert.
        bundle_path = os.path.join(tmp, "client-key-and-cert.pem")
        with open(bundle_path, "wb") as f:
            f.write(key_bytes.rstrip(b"\n") + b"\n" + cert_bytes)
        credential = CertificateCredential(
            args.tenant,
            args.client_id,
            certificate_path=bundle_path,
            authority=host,
            disable_instance_discovery=True,
        )
        try:
            out["azure_identity"] = credential.get_token(args.scope).token
        finally:
            credential.close()

    out["versions"] = {"msal": version("msal"), "azure-identity": version("azure-identity")}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TokenError as e:  # the authority answered with an error: show it as is
        print("get_tokens.py: FAILED: %s" % e, file=sys.stderr)
        sys.exit(1)
    except Exception:  # anything else (TLS, network, library): full traceback
        import traceback
        traceback.print_exc(file=sys.stderr)
        print("get_tokens.py: FAILED", file=sys.stderr)
        sys.exit(1)
