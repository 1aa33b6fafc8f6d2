#!/usr/bin/env python3
"""Dev tool: compare Pemba's protos with the descriptors of the official `authzed` client.

Both sides are rendered to one line per message, field (number, label, type,
JSON name, oneof), enum value and RPC, then diffed; options (validation rules,
HTTP annotations, `deprecated`) are ignored as they do not affect the wire.
Not run by CI: the Rust test checks against crates/pemba-proto/tests/upstream_descriptors.txt,
which is this script's --table output under a '#' header; refresh it on a client upgrade.

    python3 -m venv /tmp/protocheck && /tmp/protocheck/bin/pip install authzed
    PEMBA_DUMP_FDS=/tmp/pemba_fds.bin cargo test -p pemba-proto --test wire
    /tmp/protocheck/bin/python proto/check_wire_compat.py /tmp/pemba_fds.bin
    /tmp/protocheck/bin/python proto/check_wire_compat.py --table   # upstream lines only
"""
import importlib
import sys

from google.protobuf import descriptor_pb2 as pb

# The upstream modules Pemba defines (experimental_service and openapi are left out).
MODULES = [
    "authzed.api.v1.core_pb2",
    "authzed.api.v1.debug_pb2",
    "authzed.api.v1.error_reason_pb2",
    "authzed.api.v1.permission_service_pb2",
    "authzed.api.v1.schema_service_pb2",
    "authzed.api.v1.watch_service_pb2",
    "google.rpc.status_pb2",
]


def json_name(field):
    """protoc's default JSON name, for descriptors generated without one."""
    head, *rest = field.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def render(files):
    """One sorted line per wire-relevant fact of the given FileDescriptorProtos."""
    out = []

    def enum(scope, e, file):
        out.append(f"enum {scope}.{e.name} ({file})")
        out.extend(f"value {scope}.{e.name}.{v.name} = {v.number}" for v in e.value)

    def message(scope, m, file):
        name = f"{scope}.{m.name}"
        out.append(f"message {name} ({file})")
        for f in m.field:
            label = "proto3_optional" if f.proto3_optional else pb.FieldDescriptorProto.Label.Name(f.label)
            kind = pb.FieldDescriptorProto.Type.Name(f.type) + (f" {f.type_name}" if f.type_name else "")
            oneof = f" oneof {m.oneof_decl[f.oneof_index].name}" if f.HasField("oneof_index") else ""
            json = f.json_name or json_name(f.name)
            out.append(f"field {name}.{f.name} = {f.number} {label} {kind} json={json}{oneof}")
        for n in m.nested_type:
            message(name, n, file)
        for e in m.enum_type:
            enum(name, e, file)

    for fd in files:
        scope = f".{fd.package}"
        for m in fd.message_type:
            message(scope, m, fd.name)
        for e in fd.enum_type:
            enum(scope, e, fd.name)
        for s in fd.service:
            out.append(f"service {scope}.{s.name} ({fd.name})")
            for r in s.method:
                cs = "stream " if r.client_streaming else ""
                ss = "stream " if r.server_streaming else ""
                out.append(f"rpc {scope}.{s.name}.{r.name}({cs}{r.input_type}) returns ({ss}{r.output_type})")
    return sorted(out)


def upstream():
    files = []
    for name in MODULES:
        fd = pb.FileDescriptorProto()
        importlib.import_module(name).DESCRIPTOR.CopyToProto(fd)
        files.append(fd)
    return files


def main(argv):
    theirs = render(upstream())
    if argv == ["--table"]:
        print("\n".join(theirs))
        return 0
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    fds = pb.FileDescriptorSet()
    with open(argv[0], "rb") as f:
        fds.ParseFromString(f.read())
    wanted = {fd.name for fd in upstream()}
    ours = render(fd for fd in fds.file if fd.name in wanted)
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    for line in missing:
        print(f"- upstream only: {line}")
    for line in extra:
        print(f"+ pemba only:    {line}")
    print(f"{len(theirs)} upstream lines, {len(missing)} missing, {len(extra)} extra")
    return 1 if missing or extra else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
