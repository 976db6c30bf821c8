"""schemathesis hooks for scripts/api-fuzz.sh.

One: a schema-valid Idempotency-Key is made unique per request. The fuzzer draws keys
from a small pool ("0", "00", ...), so two requests would share a key with different
bodies, and the server rightly answers 422 idempotency-key-reused (the IETF draft's
status) -- state the schema cannot express, which the positive-data check would count
as a valid request refused. Invalid keys are sent as generated: the server must still
refuse them with 400.
"""

import itertools
import re

import schemathesis

_VALID_KEY = re.compile(r"[!-~]{1,255}")
_sequence = itertools.count()


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _VALID_KEY.fullmatch(key):
        headers["Idempotency-Key"] = f"{key[:200]}.{next(_sequence)}"
