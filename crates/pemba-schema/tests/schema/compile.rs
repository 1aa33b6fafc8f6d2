//! Schemas that compile, and the models they compile to: every construct of the language,
//! operator precedence, flattening, comments and the rules SpiceDB deliberately does not enforce.

use pemba_schema::{
    compile, AllowedSubject, AllowedSubjectKind, Arrow, ArrowFunction, CaveatDefinition, Member,
    Rewrite, MAX_NESTING_DEPTH,
};

use crate::{assert_round_trip, compiled};

fn computed(name: &str) -> Rewrite {
    Rewrite::Computed(name.to_string())
}

fn arrow(tupleset: &str, computed: &str, function: ArrowFunction) -> Rewrite {
    Rewrite::Arrow(Arrow {
        tupleset: tupleset.into(),
        computed: computed.into(),
        function,
    })
}

fn exclusion(left: Rewrite, right: Rewrite) -> Rewrite {
    Rewrite::Exclusion(Box::new(left), Box::new(right))
}

fn union(children: Vec<Rewrite>) -> Rewrite {
    Rewrite::Union(children)
}

fn intersection(children: Vec<Rewrite>) -> Rewrite {
    Rewrite::Intersection(children)
}

/// The rewrite of `permission ppp = {expr}` in a definition with relations aaa, bbb, ccc, ddd
/// (also checks that it round-trips through the printer).
fn rewrite_of(expr: &str) -> Rewrite {
    let text = format!(
        "definition doc {{\n\trelation aaa: doc\n\trelation bbb: doc\n\trelation ccc: \
         doc\n\trelation ddd: doc\n\tpermission ppp = {expr}\n}}"
    );
    let schema = compiled(&text);
    assert_round_trip(&schema);
    let definition = schema.definition("doc").expect("doc");
    match definition.member("ppp") {
        Some(Member::Permission(p)) => p.rewrite.clone(),
        other => panic!("no permission ppp: {other:?}"),
    }
}

fn subject(
    subject_type: &str,
    kind: AllowedSubjectKind,
    caveat: Option<&str>,
    expiration: bool,
) -> AllowedSubject {
    AllowedSubject {
        subject_type: subject_type.into(),
        kind,
        caveat: caveat.map(str::to_string),
        expiration,
    }
}

#[test]
fn relations_allow_every_kind_of_subject() {
    let schema = compiled(
        "use expiration\n\ncaveat only_on_tuesday(day string) {\n\tday == 'tuesday'\n}\n\n\
         definition user {}\ndefinition group {\n\trelation member: user | group#member\n}\n\
         definition doc {\n\trelation viewer: user | user:* | group#member | user with \
         only_on_tuesday | user with expiration | group#member with only_on_tuesday and \
         expiration | user:* with only_on_tuesday\n\trelation owner: user#...\n}",
    );
    assert!(schema.uses_expiration);
    let doc = schema.definition("doc").expect("doc");
    let member = || AllowedSubjectKind::Relation("member".into());
    use AllowedSubjectKind::{Object, Wildcard};
    assert_eq!(
        doc.relation("viewer").expect("viewer").allowed,
        vec![
            subject("user", Object, None, false),
            subject("user", Wildcard, None, false),
            subject("group", member(), None, false),
            subject("user", Object, Some("only_on_tuesday"), false),
            subject("user", Object, None, true),
            subject("group", member(), Some("only_on_tuesday"), true),
            subject("user", Wildcard, Some("only_on_tuesday"), false),
        ]
    );
    assert_eq!(
        doc.relation("owner").expect("owner").allowed,
        vec![subject("user", Object, None, false)]
    );
    assert_round_trip(&schema);
}

#[test]
fn definitions_and_members_keep_source_order() {
    let schema = compiled(
        "definition user {}\ncaveat cav(a int) { a > 0 }\ndefinition doc {\n\tpermission view = \
         viewer\n\trelation viewer: user\n}",
    );
    let names: Vec<&str> = schema.definitions.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["user", "doc"]);
    let doc = schema.definition("doc").expect("doc");
    let members: Vec<&str> = doc.members.iter().map(Member::name).collect();
    assert_eq!(members, ["view", "viewer"]);
    assert!(
        doc.relation("view").is_none(),
        "a permission is not a relation"
    );
    assert!(schema.definition("nothing").is_none());
    assert!(!schema.uses_expiration);
}

#[test]
fn union_binds_tighter_than_intersection_and_exclusion() {
    let (a, b, c, d) = (
        computed("aaa"),
        computed("bbb"),
        computed("ccc"),
        computed("ddd"),
    );
    assert_eq!(
        rewrite_of("aaa - bbb + ccc"),
        exclusion(a.clone(), union(vec![b.clone(), c.clone()]))
    );
    assert_eq!(
        rewrite_of("aaa & bbb + ccc"),
        intersection(vec![a.clone(), union(vec![b.clone(), c.clone()])])
    );
    assert_eq!(
        rewrite_of("aaa + bbb - ccc"),
        exclusion(union(vec![a.clone(), b.clone()]), c.clone())
    );
    assert_eq!(
        rewrite_of("aaa - bbb & ccc"),
        exclusion(a.clone(), intersection(vec![b.clone(), c.clone()]))
    );
    assert_eq!(
        rewrite_of("aaa + bbb & ccc - ddd"),
        exclusion(
            intersection(vec![union(vec![a.clone(), b.clone()]), c.clone()]),
            d.clone()
        )
    );
}

#[test]
fn operators_are_left_associative() {
    let (a, b, c) = (computed("aaa"), computed("bbb"), computed("ccc"));
    assert_eq!(
        rewrite_of("aaa - bbb - ccc"),
        exclusion(exclusion(a.clone(), b.clone()), c.clone())
    );
    assert_eq!(
        rewrite_of("aaa - (bbb - ccc)"),
        exclusion(a.clone(), exclusion(b.clone(), c.clone()))
    );
    assert_eq!(
        rewrite_of("aaa + bbb + ccc"),
        union(vec![a.clone(), b.clone(), c.clone()])
    );
    assert_eq!(rewrite_of("aaa & bbb & ccc"), intersection(vec![a, b, c]));
}

#[test]
fn unions_and_intersections_are_flattened() {
    let (a, b, c, d) = (
        computed("aaa"),
        computed("bbb"),
        computed("ccc"),
        computed("ddd"),
    );
    let all = || vec![a.clone(), b.clone(), c.clone(), d.clone()];
    assert_eq!(rewrite_of("(aaa + bbb) + ccc + ddd"), union(all()));
    assert_eq!(rewrite_of("aaa + (bbb + (ccc + ddd))"), union(all()));
    assert_eq!(
        rewrite_of("(aaa & bbb) & (ccc & (ddd))"),
        intersection(all())
    );
    assert_eq!(
        rewrite_of("(aaa + bbb) & ccc"),
        intersection(vec![union(vec![a.clone(), b.clone()]), c.clone()])
    );
    assert_eq!(
        rewrite_of("aaa + (bbb & ccc) + (ddd - aaa)"),
        union(vec![
            a.clone(),
            intersection(vec![b.clone(), c.clone()]),
            exclusion(d.clone(), a.clone())
        ])
    );
    assert_eq!(rewrite_of("((aaa))"), a);
}

#[test]
fn arrows() {
    use ArrowFunction::{All, Any};
    assert_eq!(rewrite_of("aaa->view"), arrow("aaa", "view", Any));
    assert_eq!(rewrite_of("aaa.any(view)"), arrow("aaa", "view", Any));
    assert_eq!(rewrite_of("aaa.all(view)"), arrow("aaa", "view", All));
    assert_eq!(
        rewrite_of("aaa->view + bbb - ccc.all(ppp)"),
        exclusion(
            union(vec![arrow("aaa", "view", Any), computed("bbb")]),
            arrow("ccc", "ppp", All)
        )
    );
    // Like SpiceDB, the right side need not exist on any subject type (SpiceDB only warns).
    assert_eq!(
        rewrite_of("aaa->nothing_anywhere"),
        arrow("aaa", "nothing_anywhere", Any)
    );
}

#[test]
fn nil() {
    assert_eq!(rewrite_of("nil"), Rewrite::Nil);
    assert_eq!(
        rewrite_of("(aaa + nil) - nil"),
        exclusion(union(vec![computed("aaa"), Rewrite::Nil]), Rewrite::Nil)
    );
}

#[test]
fn nesting_up_to_the_limit_compiles() {
    let parens = "(".repeat(MAX_NESTING_DEPTH);
    let closes = ")".repeat(MAX_NESTING_DEPTH);
    assert_eq!(rewrite_of(&format!("{parens}aaa{closes}")), computed("aaa"));
    let chain = format!("aaa{}", " - bbb".repeat(MAX_NESTING_DEPTH - 1));
    assert!(matches!(rewrite_of(&chain), Rewrite::Exclusion(..)));
    let wide = vec!["aaa"; 10_000].join(" + ");
    assert!(matches!(rewrite_of(&wide), Rewrite::Union(children) if children.len() == 10_000));
}

#[test]
fn expressions_may_continue_after_a_trailing_operator() {
    let rewrite = rewrite_of("aaa +\n\t\tbbb -\n\n\t\tccc & (\n\t\t\tddd)");
    assert_eq!(
        rewrite,
        exclusion(
            union(vec![computed("aaa"), computed("bbb")]),
            intersection(vec![computed("ccc"), computed("ddd")])
        )
    );
}

#[test]
fn type_paths_with_slashes() {
    let schema = compiled(
        "definition org/team/user {}\n\ncaveat foo/bar/only_on_tuesday(day_of_week string) \
         {\n\tday_of_week == 'tuesday'\n}\n\ndefinition foo/bar/baz {\n\trelation viewer: \
         org/team/user with foo/bar/only_on_tuesday | foo / bar / baz#viewer\n}",
    );
    let baz = schema
        .definition("foo/bar/baz")
        .expect("definition with slashes");
    assert_eq!(
        baz.relation("viewer").expect("viewer").allowed,
        vec![
            subject(
                "org/team/user",
                AllowedSubjectKind::Object,
                Some("foo/bar/only_on_tuesday"),
                false
            ),
            subject(
                "foo/bar/baz",
                AllowedSubjectKind::Relation("viewer".into()),
                None,
                false
            ),
        ]
    );
    assert_eq!(schema.caveats[0].name, "foo/bar/only_on_tuesday");
    assert_round_trip(&schema);
}

#[test]
fn statements_end_with_semicolons_or_line_breaks() {
    let schema = compiled(
        "definition user {};definition doc {\n\trelation viewer: user;; permission view = \
         viewer;\n\n\n\trelation owner: user#...\n\tpermission edit = owner\n} definition \
         other {}",
    );
    let doc = schema.definition("doc").expect("doc");
    assert_eq!(doc.members.len(), 4);
    assert!(schema.definition("other").is_some());
}

#[test]
fn comments_are_ignored_between_tokens() {
    let schema = compiled(
        "definition /* a */ user /* b */ {} // c\ndefinition doc { // d\n\trelation viewer: /* e \
         */ user // f\n\tpermission view = viewer /* g\n spanning lines */ + /* h */ viewer // i\n}\
         // end",
    );
    assert_eq!(schema.definitions.len(), 2);
    let doc = schema.definition("doc").expect("doc");
    assert_eq!(doc.doc_comments, Vec::<String>::new());
    match doc.member("viewer") {
        // "// d" follows the `{` on its line, so it documents the next member (as in SpiceDB).
        Some(Member::Relation(r)) => assert_eq!(r.doc_comments, ["// d"]),
        other => panic!("{other:?}"),
    }
    match doc.member("view") {
        // "// f" trails the relation's line: it documents nothing.
        Some(Member::Permission(p)) => assert!(p.doc_comments.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn doc_comments_attach_to_the_following_item() {
    let schema = compiled(
        "/**\n * user represents a user\n */\ndefinition user {}\n\n// caveat \
         doc\ncaveat cav(a int) {\n  a == 1\n}\n\n/** document */\n// second\ndefinition document \
         {\n    /**\n     * writer can write.\n     */\n    relation writer: user\n\n    // \
         view\n    permission view = writer   \n}\n",
    );
    let user = schema.definition("user").expect("user");
    assert_eq!(user.doc_comments, ["/**\n* user represents a user\n*/"]);
    assert_eq!(schema.caveats[0].doc_comments, ["// caveat doc"]);
    let document = schema.definition("document").expect("document");
    assert_eq!(document.doc_comments, ["/** document */", "// second"]);
    match (document.member("writer"), document.member("view")) {
        (Some(Member::Relation(w)), Some(Member::Permission(v))) => {
            assert_eq!(w.doc_comments, ["/**\n* writer can write.\n*/"]);
            assert_eq!(v.doc_comments, ["// view"]);
        }
        other => panic!("{other:?}"),
    }
    assert_round_trip(&schema);
}

#[test]
fn caveats_keep_parameters_and_expression_text() {
    let schema = compiled(
        "caveat ip_allowlist(user_ip ipaddress, allowed list<  map< string > >, threshold \
         int) {\n  allowed.exists(x, user_ip.in_cidr(x['cidr'])) && threshold > {\"}{\": \
         1}['}{'] // trailing note\n    && '''multi\n}line''' != \"\"\n}",
    );
    let [caveat] = schema.caveats.as_slice() else {
        panic!("one caveat expected: {:?}", schema.caveats);
    };
    let CaveatDefinition {
        name,
        doc_comments,
        parameters,
        expression,
        compiled: _,
    } = caveat;
    assert_eq!(name, "ip_allowlist");
    assert!(doc_comments.is_empty());
    assert_eq!(
        parameters,
        &[
            ("user_ip".to_string(), "ipaddress".to_string()),
            ("allowed".into(), "list<map<string>>".into()),
            ("threshold".into(), "int".into()),
        ]
    );
    assert_eq!(
        expression,
        "allowed.exists(x, user_ip.in_cidr(x['cidr'])) && threshold > {\"}{\": \
         1}['}{'] // trailing note\n    && '''multi\n}line''' != \"\""
    );
    assert_round_trip(&schema);
}

#[test]
fn expiration_is_a_plain_name_without_use_expiration() {
    // As in SpiceDB: without `use expiration`, `with expiration` names a caveat.
    let schema = compiled(
        "definition user {}\ncaveat expiration(now timestamp) {\n\tnow > \
         timestamp('2020-01-01T00:00:00Z')\n}\ndefinition doc {\n\trelation viewer: user with \
         expiration\n}",
    );
    let viewer = schema
        .definition("doc")
        .and_then(|d| d.relation("viewer"))
        .expect("viewer");
    assert_eq!(viewer.allowed[0].caveat.as_deref(), Some("expiration"));
    assert!(!viewer.allowed[0].expiration);
    assert_round_trip(&schema);
}

#[test]
fn use_expiration_may_be_repeated_or_unused() {
    let schema = compiled("use expiration\nuse expiration\nuse typechecking\n\ndefinition user {}");
    assert!(schema.uses_expiration);
    assert_round_trip(&schema);
}

#[test]
fn empty_schemas() {
    for text in ["", "\n\n", "// only a comment\n", "/* block */", ";;"] {
        let schema = compiled(text);
        assert!(
            schema.definitions.is_empty() && schema.caveats.is_empty(),
            "{text:?}"
        );
        assert_eq!(schema.to_schema_text(), "");
    }
}

#[test]
fn what_spicedb_accepts_without_complaint() {
    // A permission may mention itself, as long as it is not only an alias of itself.
    compiled("definition doc {\n\trelation viewer: doc\n\tpermission view = view + viewer\n}");
    // A subject relation of the relation's own definition may reach a wildcard.
    compiled(
        "definition user {}\ndefinition doc {\n\trelation everyone: user:*\n\trelation \
         viewer: doc#everyone\n}",
    );
    // A subject relation may be a permission, even one over a wildcard relation.
    compiled(
        "definition user {}\ndefinition group {\n\trelation member: user:*\n\tpermission \
         members = member\n}\ndefinition doc {\n\trelation viewer: group#members\n}",
    );
    // The same type with different caveats, and aliases that end in a relation.
    compiled(
        "definition user {}\ncaveat cav(a int) { a == 1 }\ndefinition doc {\n\trelation viewer: \
         user | user with cav\n\tpermission edit = view\n\tpermission view = viewer\n}",
    );
    // Caveat and parameter names SpiceDB allows.
    compiled("caveat cav(someParam int, _x bool) {\n\tsomeParam > 0 || _x\n}");
}

#[test]
fn unicode_in_comments_and_caveat_strings() {
    let schema = compiled(
        "// 文档\ndefinition user {}\ncaveat test_chinese(attr string) {\n  attr == '一级'\n}",
    );
    assert_eq!(schema.definitions[0].doc_comments, ["// 文档"]);
    assert_eq!(schema.caveats[0].expression, "attr == '一级'");
    assert_round_trip(&schema);
}

#[test]
fn source_name_appears_only_in_errors() {
    let a = compile("a.zed", "definition user {}").expect("compiles");
    let b = compile("b.zed", "definition user {}").expect("compiles");
    assert_eq!(a, b);
}

#[test]
fn caveat_names_follow_spicedbs_api_pattern_not_the_type_pattern() {
    // SpiceDB accepts these (its API's caveat name pattern), though none is a valid type name.
    for name in ["c", "Cav", "1cav", "_cav", "a/b"] {
        let schema = format!(
            "caveat {name}(a int) {{ a == 1 }}\ndefinition user {{}}\ndefinition doc {{\n    relation viewer: user with {name}\n}}"
        );
        compiled(&schema);
    }
}
