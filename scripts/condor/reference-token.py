#!/usr/bin/env python3
"""Mints a reference IDTOKEN with HTCondor's own code (scripts/condor/mint-reference-token.cpp).

Usage: reference-token.py SHARED_OBJECT SUBJECT KEY_ID AUTHZ LIFETIME
The configuration is found as HTCondor finds it (CONDOR_CONFIG). Prints a JSON object:
  {"token": "...", "signingKeyHex": "..."}   # signingKeyHex: what HTCondor feeds to HKDF
"""

import ctypes
import json
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import htcondor2  # loads libcondor_utils and reads the configuration


def main():
    library, subject, key_id, authz, lifetime = sys.argv[1:6]
    htcondor2.reload_config()
    shim = ctypes.CDLL(library)
    shim.annex_generate_token.restype = ctypes.c_int
    shim.annex_generate_token.argtypes = [
        ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_long, ctypes.c_char_p, ctypes.c_int,
    ]
    shim.annex_signing_key.restype = ctypes.c_int
    shim.annex_signing_key.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]

    out = ctypes.create_string_buffer(8192)
    n = shim.annex_generate_token(
        subject.encode(), key_id.encode(), authz.encode(), int(lifetime), out, len(out)
    )
    if n < 0:
        sys.exit("HTCondor's generate_token failed (TRUST_DOMAIN, key file and its mode 0600?)")
    key = ctypes.create_string_buffer(4096)
    k = shim.annex_signing_key(key_id.encode(), key, len(key))
    if k < 0:
        sys.exit("HTCondor's getTokenSigningKey failed")
    json.dump({"token": out.value.decode(), "signingKeyHex": key.raw[:k].hex()}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
