// Drives a SpiceDB-API server with SpiceDB's official Go client (github.com/authzed/authzed-go)
// and prints one line per outcome. Run against real SpiceDB and against Pemba, the outputs must
// be equal: tokens are printed only as "token", lists sorted, errors as their gRPC code.
//
//	go run . <host:port> <preshared key> <schema file>
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// bearer sends the preshared key on a plaintext connection.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

func connect(endpoint, key string) *authzed.Client {
	client, err := authzed.NewClient(endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(key)))
	if err != nil {
		fmt.Println("connect:", err)
		os.Exit(1)
	}
	return client
}

func object(kind, id string) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: kind, ObjectId: id}
}

func subject(kind, id, relation string) *v1.SubjectReference {
	return &v1.SubjectReference{Object: object(kind, id), OptionalRelation: relation}
}

func touch(kind, id, relation string, who *v1.SubjectReference) *v1.RelationshipUpdate {
	return &v1.RelationshipUpdate{
		Operation:    v1.RelationshipUpdate_OPERATION_TOUCH,
		Relationship: &v1.Relationship{Resource: object(kind, id), Relation: relation, Subject: who},
	}
}

func fresh(token *v1.ZedToken) *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: token}}
}

func tokenText(token *v1.ZedToken) string {
	if token.GetToken() != "" {
		return "token"
	}
	return "no token"
}

// step prints a step's outcome, or its error's gRPC code.
func step(name string, run func(context.Context) (string, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := run(ctx)
	if err != nil {
		out = "error " + status.Code(err).String()
	}
	fmt.Printf("%s: %s\n", name, out)
}

// drain reads a stream to its end, mapping each message to a string, sorted.
func drain[T any](recv func() (T, error), show func(T) string) (string, error) {
	var items []string
	for {
		item, err := recv()
		if errors.Is(err, io.EOF) {
			sort.Strings(items)
			return strings.Join(items, " "), nil
		}
		if err != nil {
			return "", err
		}
		items = append(items, show(item))
	}
}

func main() {
	endpoint, key := os.Args[1], os.Args[2]
	schemaText, err := os.ReadFile(os.Args[3])
	if err != nil {
		fmt.Println("schema:", err)
		os.Exit(1)
	}
	schema := string(schemaText)
	client := connect(endpoint, key)
	var token *v1.ZedToken
	check := func(doc, permission, user string, consistency *v1.Consistency) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			answer, err := client.CheckPermission(ctx, &v1.CheckPermissionRequest{
				Resource: object("document", doc), Permission: permission,
				Subject: subject("user", user, ""), Consistency: consistency,
			})
			return answer.GetPermissionship().String(), err
		}
	}

	step("write schema", func(ctx context.Context) (string, error) {
		answer, err := client.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: schema})
		return tokenText(answer.GetWrittenAt()), err
	})
	step("write relationships", func(ctx context.Context) (string, error) {
		answer, err := client.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
			touch("document", "plan", "owner", subject("user", "ann", "")),
			touch("document", "plan", "viewer", subject("group", "eng", "member")),
			touch("document", "memo", "viewer", subject("user", "bob", "")),
			touch("group", "eng", "member", subject("user", "cat", "")),
			touch("group", "eng", "member", subject("group", "ops", "member")),
			touch("group", "ops", "member", subject("user", "dan", "")),
		}})
		token = answer.GetWrittenAt()
		return tokenText(token), err
	})
	for _, c := range [][3]string{
		{"plan", "view", "ann"}, {"plan", "edit", "ann"}, {"plan", "view", "dan"},
		{"plan", "edit", "dan"}, {"memo", "view", "ann"}, {"memo", "view", "bob"},
	} {
		step(fmt.Sprintf("check %s %s %s (token)", c[0], c[1], c[2]), check(c[0], c[1], c[2], fresh(token)))
	}
	full := &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
	step("check plan view dan (fully consistent)", check("plan", "view", "dan", full))
	step("bulk check", func(ctx context.Context) (string, error) {
		var items []*v1.CheckBulkPermissionsRequestItem
		for _, user := range []string{"ann", "bob", "dan"} {
			items = append(items, &v1.CheckBulkPermissionsRequestItem{
				Resource: object("document", "plan"), Permission: "view", Subject: subject("user", user, ""),
			})
		}
		answer, err := client.CheckBulkPermissions(ctx, &v1.CheckBulkPermissionsRequest{Consistency: fresh(token), Items: items})
		var out []string
		for _, pair := range answer.GetPairs() {
			if pair.GetError() != nil {
				out = append(out, "error")
			} else {
				out = append(out, pair.GetItem().GetPermissionship().String())
			}
		}
		return strings.Join(out, " "), err
	})
	step("lookup resources dan view", func(ctx context.Context) (string, error) {
		stream, err := client.LookupResources(ctx, &v1.LookupResourcesRequest{
			ResourceObjectType: "document", Permission: "view", Subject: subject("user", "dan", ""), Consistency: fresh(token),
		})
		if err != nil {
			return "", err
		}
		return drain(stream.Recv, func(r *v1.LookupResourcesResponse) string { return r.GetResourceObjectId() })
	})
	step("lookup subjects plan view", func(ctx context.Context) (string, error) {
		stream, err := client.LookupSubjects(ctx, &v1.LookupSubjectsRequest{
			Resource: object("document", "plan"), Permission: "view", SubjectObjectType: "user", Consistency: fresh(token),
		})
		if err != nil {
			return "", err
		}
		return drain(stream.Recv, func(r *v1.LookupSubjectsResponse) string { return r.GetSubject().GetSubjectObjectId() })
	})
	step("read relationships of plan", func(ctx context.Context) (string, error) {
		stream, err := client.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{
			RelationshipFilter: &v1.RelationshipFilter{ResourceType: "document", OptionalResourceId: "plan"}, Consistency: fresh(token),
		})
		if err != nil {
			return "", err
		}
		return drain(stream.Recv, func(r *v1.ReadRelationshipsResponse) string {
			rel := r.GetRelationship()
			text := fmt.Sprintf("%s:%s#%s@%s:%s", rel.Resource.ObjectType, rel.Resource.ObjectId, rel.Relation,
				rel.Subject.Object.ObjectType, rel.Subject.Object.ObjectId)
			if rel.Subject.OptionalRelation != "" {
				text += "#" + rel.Subject.OptionalRelation
			}
			return text
		})
	})
	step("expand plan view", func(ctx context.Context) (string, error) {
		answer, err := client.ExpandPermissionTree(ctx, &v1.ExpandPermissionTreeRequest{
			Resource: object("document", "plan"), Permission: "view", Consistency: fresh(token),
		})
		return "a tree rooted at " + answer.GetTreeRoot().GetExpandedObject().GetObjectId(), err
	})
	step("delete eng's members", func(ctx context.Context) (string, error) {
		answer, err := client.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{
			RelationshipFilter: &v1.RelationshipFilter{ResourceType: "group", OptionalResourceId: "eng"},
		})
		token = answer.GetDeletedAt()
		return tokenText(token), err
	})
	step("check plan view dan after the delete (token)", check("plan", "view", "dan", fresh(token)))
	step("check an unknown permission", check("plan", "nosuch", "ann", fresh(token)))
	step("a wrong key", func(ctx context.Context) (string, error) {
		other := connect(endpoint, "not-the-key")
		defer other.Close()
		_, err := other.ReadSchema(ctx, &v1.ReadSchemaRequest{})
		return "answered", err
	})
	client.Close()
}
