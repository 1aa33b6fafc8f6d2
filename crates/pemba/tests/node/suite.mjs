// Drives a SpiceDB-API server with SpiceDB's official Node client (@authzed/authzed-node) and
// prints one line per outcome. Run against real SpiceDB and against Pemba, the outputs must be
// equal: tokens are printed only as "token", lists sorted, errors as their gRPC code.
//   node suite.mjs <host:port> <preshared key> <schema file>
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { v1 } from "@authzed/authzed-node";

const [endpoint, key, schemaFile] = process.argv.slice(2);
const client = v1.NewClient(key, endpoint, v1.ClientSecurity.INSECURE_PLAINTEXT_CREDENTIALS);
const api = client.promises;

const SCHEMA = readFileSync(schemaFile, "utf8");

const object = (objectType, objectId) => v1.ObjectReference.create({ objectType, objectId });
const subject = (type, id, optionalRelation = "") =>
  v1.SubjectReference.create({ object: object(type, id), optionalRelation });
const relationship = (doc, relation, who) =>
  v1.Relationship.create({ resource: object(doc[0], doc[1]), relation, subject: who });
const update = (operation, rel) => v1.RelationshipUpdate.create({ operation, relationship: rel });
const fresh = (token) =>
  v1.Consistency.create({ requirement: { oneofKind: "atLeastAsFresh", atLeastAsFresh: token } });
const full = v1.Consistency.create({ requirement: { oneofKind: "fullyConsistent", fullyConsistent: true } });
const codeName = (code) => Object.keys(grpc.status).find((name) => grpc.status[name] === code);
const permissionship = (value) => v1.CheckPermissionResponse_Permissionship[value];
const show = (rel) =>
  `${rel.resource.objectType}:${rel.resource.objectId}#${rel.relation}@` +
  `${rel.subject.object.objectType}:${rel.subject.object.objectId}` +
  (rel.subject.optionalRelation ? `#${rel.subject.optionalRelation}` : "");

/** Runs one step, printing its outcome or its error's gRPC code. */
async function step(name, run) {
  try {
    console.log(`${name}: ${await run()}`);
  } catch (err) {
    console.log(`${name}: error ${codeName(err?.code) ?? err}`);
  }
}

async function check(doc, permission, user, consistency) {
  const answer = await api.checkPermission(
    v1.CheckPermissionRequest.create({
      resource: object("document", doc),
      permission,
      subject: subject("user", user),
      consistency,
    }),
  );
  return permissionship(answer.permissionship);
}

let token;
await step("write schema", async () => {
  const answer = await api.writeSchema(v1.WriteSchemaRequest.create({ schema: SCHEMA }));
  return answer.writtenAt?.token ? "token" : "no token";
});
await step("read schema", async () => {
  const answer = await api.readSchema(v1.ReadSchemaRequest.create({}));
  return answer.schemaText.includes("permission view = viewer + edit") ? "the schema" : answer.schemaText;
});
await step("write relationships", async () => {
  const T = v1.RelationshipUpdate_Operation.TOUCH;
  const answer = await api.writeRelationships(
    v1.WriteRelationshipsRequest.create({
      updates: [
        update(T, relationship(["document", "plan"], "owner", subject("user", "ann"))),
        update(T, relationship(["document", "plan"], "viewer", subject("group", "eng", "member"))),
        update(T, relationship(["document", "memo"], "viewer", subject("user", "bob"))),
        update(T, relationship(["group", "eng"], "member", subject("user", "cat"))),
        update(T, relationship(["group", "eng"], "member", subject("group", "ops", "member"))),
        update(T, relationship(["group", "ops"], "member", subject("user", "dan"))),
      ],
    }),
  );
  token = answer.writtenAt;
  return token?.token ? "token" : "no token";
});
for (const [doc, permission, user] of [
  ["plan", "view", "ann"],
  ["plan", "edit", "ann"],
  ["plan", "view", "cat"],
  ["plan", "view", "dan"],
  ["plan", "edit", "dan"],
  ["memo", "view", "ann"],
  ["memo", "view", "bob"],
]) {
  await step(`check ${doc} ${permission} ${user} (token)`, () => check(doc, permission, user, fresh(token)));
}
await step("check plan view dan (fully consistent)", () => check("plan", "view", "dan", full));
await step("bulk check", async () => {
  const answer = await api.checkBulkPermissions(
    v1.CheckBulkPermissionsRequest.create({
      consistency: fresh(token),
      items: ["ann", "bob", "dan"].map((user) =>
        v1.CheckBulkPermissionsRequestItem.create({
          resource: object("document", "plan"),
          permission: "view",
          subject: subject("user", user),
        }),
      ),
    }),
  );
  return answer.pairs
    .map((pair) =>
      pair.response.oneofKind === "item"
        ? permissionship(pair.response.item.permissionship)
        : `error ${codeName(pair.response.error.code)}`,
    )
    .join(" ");
});
await step("lookup resources dan view", async () => {
  const answer = await api.lookupResources(
    v1.LookupResourcesRequest.create({
      resourceObjectType: "document",
      permission: "view",
      subject: subject("user", "dan"),
      consistency: fresh(token),
    }),
  );
  return answer.map((r) => r.resourceObjectId).sort().join(" ");
});
await step("lookup subjects plan view", async () => {
  const answer = await api.lookupSubjects(
    v1.LookupSubjectsRequest.create({
      resource: object("document", "plan"),
      permission: "view",
      subjectObjectType: "user",
      consistency: fresh(token),
    }),
  );
  return answer.map((s) => s.subject.subjectObjectId).sort().join(" ");
});
await step("read relationships of plan", async () => {
  const answer = await api.readRelationships(
    v1.ReadRelationshipsRequest.create({
      relationshipFilter: v1.RelationshipFilter.create({ resourceType: "document", optionalResourceId: "plan" }),
      consistency: fresh(token),
    }),
  );
  return answer.map((r) => show(r.relationship)).sort().join(" ");
});
await step("expand plan view", async () => {
  const answer = await api.expandPermissionTree(
    v1.ExpandPermissionTreeRequest.create({
      resource: object("document", "plan"),
      permission: "view",
      consistency: fresh(token),
    }),
  );
  return answer.treeRoot?.expandedObject?.objectId === "plan" ? "a tree rooted at plan" : JSON.stringify(answer);
});
await step("delete eng's members", async () => {
  const answer = await api.deleteRelationships(
    v1.DeleteRelationshipsRequest.create({
      relationshipFilter: v1.RelationshipFilter.create({ resourceType: "group", optionalResourceId: "eng" }),
    }),
  );
  token = answer.deletedAt;
  return token?.token ? "token" : "no token";
});
await step("check plan view dan after the delete (token)", () => check("plan", "view", "dan", fresh(token)));
await step("check plan view cat after the delete (token)", () => check("plan", "view", "cat", fresh(token)));
await step("check an unknown permission", () => check("plan", "nosuch", "ann", fresh(token)));
await step("a wrong key", async () => {
  const other = v1.NewClient("not-the-key", endpoint, v1.ClientSecurity.INSECURE_PLAINTEXT_CREDENTIALS);
  try {
    await other.promises.readSchema(v1.ReadSchemaRequest.create({}));
    return "answered";
  } finally {
    other.close();
  }
});
client.close();
