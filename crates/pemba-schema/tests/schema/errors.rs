//! Malformed schemas: one test per rule, each asserting the whole error text (file, line,
//! column and message).

use crate::error_of;

/// `error_case!(test_name, schema, "schema.zed:line:col: message")`.
macro_rules! error_case {
    ($name:ident, $schema:expr, $expected:expr $(,)?) => {
        #[test]
        fn $name() {
            let expected: &str = &$expected;
            assert_eq!(error_of($schema), expected);
        }
    };
}

// ---- lexical errors

error_case!(
    unterminated_block_comment,
    "definition user {}\n/* never closed\ndefinition doc {}\n",
    "schema.zed:2:1: unterminated block comment: expected '*/' before the end of the file",
);

error_case!(
    unrecognized_character,
    "definition user {}\ndefinition doc {\n\trelation viewer: user @\n}",
    "schema.zed:3:24: unrecognized character '@' (U+0040)",
);

error_case!(
    unterminated_string_in_caveat,
    "caveat cav(a string) {\n\ta == 'abc\n}",
    "schema.zed:2:7: unterminated string literal: missing the closing '",
);

error_case!(
    columns_count_characters_not_bytes,
    "/* é ü */ definition Doc {}",
    "schema.zed:1:22: invalid definition name 'Doc': must contain only lowercase letters, digits \
     and '_' (found 'D')",
);

// ---- syntax errors

error_case!(
    junk_at_top_level,
    "nonsense thing {}",
    "schema.zed:1:1: expected 'definition', 'caveat' or 'use', found identifier 'nonsense'",
);

error_case!(
    missing_equals_in_permission,
    "definition doc {\n\trelation viewer: doc\n\tpermission view + viewer\n}",
    "schema.zed:3:18: expected '=' after permission name 'view', found '+'",
);

error_case!(
    statement_needs_line_break_before_closing_brace,
    "definition user {}\ndefinition doc { relation x: user }",
    "schema.zed:2:35: expected '|', ';' or a line break after the subject types of relation 'x', \
     found '}'",
);

error_case!(
    keyword_as_relation_name,
    "definition doc {\n\trelation nil: doc\n}",
    "schema.zed:2:11: expected a relation name after 'relation', found keyword 'nil'",
);

error_case!(
    missing_permission_expression,
    "definition doc {\n\tpermission view =\n}",
    "schema.zed:3:1: expected an expression after '=' in permission 'view', found '}'",
);

error_case!(
    missing_operand_after_operator,
    "definition doc {\n\trelation viewer: doc\n\tpermission view = viewer + ;\n}",
    "schema.zed:3:29: expected an expression after '+', found ';'",
);

error_case!(
    broken_wildcard,
    "definition user {}\ndefinition doc {\n\trelation viewer: user: | user\n}",
    "schema.zed:3:25: expected '*' after 'user:', found '|'",
);

error_case!(
    missing_subject_type,
    "definition doc {\n\trelation viewer:\n}",
    "schema.zed:3:1: expected a subject type after ':' in relation 'viewer', found '}'",
);

error_case!(
    unclosed_parenthesis,
    "definition doc {\n\trelation viewer: doc\n\tpermission view = (viewer + viewer\n}",
    "schema.zed:3:36: expected ')' to close the '(' at line 3, column 20, found end of line",
);

error_case!(
    operator_starting_a_line,
    "definition doc {\n\trelation viewer: doc\n\tpermission view = viewer\n\t\t+ viewer\n}",
    "schema.zed:4:3: '+' cannot start a line: a line break ends the expression, so put the \
     operator at the end of the previous line",
);

error_case!(
    nested_arrows,
    "definition doc {\n\trelation parent: doc\n\tpermission view = parent->parent->view\n}",
    "schema.zed:3:34: nested arrows are not supported: found '->' after an arrow",
);

error_case!(
    nested_arrow_functions,
    "definition doc {\n\trelation parent: doc\n\tpermission view = parent.any(parent).all(view)\n}",
    "schema.zed:3:38: nested arrows are not supported: found '.' after an arrow",
);

error_case!(
    arrow_after_parentheses,
    "definition doc {\n\trelation parent: doc\n\tpermission view = (parent)->view\n}",
    "schema.zed:3:28: '->' must follow a relation name, not a parenthesized expression or 'nil'",
);

error_case!(
    unknown_arrow_function,
    "definition doc {\n\trelation parent: doc\n\tpermission view = parent.some(view)\n}",
    "schema.zed:3:27: unknown arrow function 'some': expected 'any' or 'all'",
);

error_case!(
    parentheses_nested_too_deeply,
    &format!(
        "definition doc {{\n\tpermission view = {}nil{}\n}}",
        "(".repeat(101),
        ")".repeat(101)
    ),
    "schema.zed:2:120: expression is nested too deeply (more than 100 levels)",
);

error_case!(
    exclusions_nested_too_deeply,
    &format!(
        "definition doc {{\n\tpermission view = nil{}\n}}",
        " - nil".repeat(100)
    ),
    // The 100th '-' makes the 101st level: the first '-' is at column 24, each " - nil" adds 6.
    &format!(
        "schema.zed:2:{}: expression is nested too deeply (more than 100 levels)",
        24 + 6 * 99
    ),
);

error_case!(
    caveat_type_nested_too_deeply,
    &format!(
        "caveat cav(a {}int{}) {{\n\ta\n}}",
        "list<".repeat(100),
        ">".repeat(100)
    ),
    "schema.zed:1:513: expression is nested too deeply (more than 100 levels)",
);

error_case!(
    import_not_supported,
    "import \"other.zed\"\ndefinition user {}",
    "schema.zed:1:1: not supported: 'import'",
);

error_case!(
    partial_not_supported,
    "partial viewable {}",
    "schema.zed:1:1: not supported: 'partial'"
);

error_case!(
    use_self_not_supported,
    "use self\ndefinition user {}",
    "schema.zed:1:5: not supported: 'use self'"
);

error_case!(
    permission_type_annotation_not_supported,
    "definition user {}\ndefinition doc {\n\trelation viewer: user\n\tpermission view: user = viewer\n}",
    "schema.zed:4:17: not supported: permission type annotations",
);

error_case!(
    partial_reference_not_supported,
    "definition doc {\n\t...viewable\n}",
    "schema.zed:2:2: not supported: partial references ('...name')",
);

error_case!(
    unknown_use_flag,
    "use somethingelse\ndefinition user {}",
    "schema.zed:1:5: unknown use flag 'somethingelse': expected 'expiration'",
);

error_case!(
    use_after_definition,
    "definition user {}\nuse expiration",
    "schema.zed:2:1: 'use' must come before every definition and caveat",
);

error_case!(
    expiration_before_caveat,
    "use expiration\ndefinition user {}\ncaveat cav(a int) { a == 1 }\ndefinition doc {\n\trelation \
     viewer: user with expiration and cav\n}",
    "schema.zed:5:40: the caveat must come before 'expiration': write 'with <caveat> and \
     expiration'",
);

error_case!(
    and_expiration_without_use_expiration,
    "definition user {}\ncaveat cav(a int) { a == 1 }\ndefinition doc {\n\trelation viewer: user \
     with cav and expiration\n}",
    "schema.zed:4:33: 'and expiration' requires 'use expiration' at the top of the schema",
);

error_case!(
    dangling_and,
    "use expiration\ndefinition user {}\ncaveat cav(a int) { a == 1 }\ndefinition doc {\n\trelation \
     viewer: user with cav and\n}",
    "schema.zed:5:36: expected 'expiration' after 'and', found end of line",
);

error_case!(
    caveat_without_parameters,
    "caveat cav() {\n\ttrue\n}",
    "schema.zed:1:12: caveat 'cav' must have at least one parameter",
);

error_case!(
    caveat_trailing_comma,
    "caveat cav(a int,) {\n\ta == 1\n}",
    "schema.zed:1:18: expected a parameter name in caveat 'cav', found ')'",
);

error_case!(
    empty_caveat_expression,
    "caveat cav(a int) {\n}",
    "schema.zed:2:1: caveat 'cav' has an empty expression",
);

error_case!(
    unclosed_caveat,
    "caveat cav(a int) {\n\ta == {1: 2}[1]\n",
    "schema.zed:3:1: expected '}' to close caveat 'cav', found end of file",
);

error_case!(
    unclosed_definition,
    "definition doc {\n\trelation viewer: doc\n",
    "schema.zed:3:1: expected 'relation', 'permission' or '}' in definition 'doc', found end of \
     file",
);

// ---- names

error_case!(
    invalid_definition_name,
    "definition Doc {}",
    "schema.zed:1:12: invalid definition name 'Doc': must contain only lowercase letters, digits \
     and '_' (found 'D')",
);

error_case!(
    invalid_definition_name_segment,
    "definition ab/user {}",
    "schema.zed:1:12: invalid definition name 'ab/user': segment 'ab' must be at least 3 \
     characters long",
);

error_case!(
    invalid_caveat_name,
    "caveat abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij(a int) {\n\ta == 9\n}",
    "schema.zed:1:8: invalid caveat name 'abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij': must match ^[a-zA-Z0-9_][a-zA-Z0-9/_|-]{0,127}$",
);

error_case!(
    invalid_relation_name,
    "definition user {}\ndefinition doc {\n\trelation ab: user\n}",
    "schema.zed:3:11: invalid relation name 'ab': must be at least 3 characters long",
);

error_case!(
    invalid_permission_name,
    "definition doc {\n\tpermission view_ = nil\n}",
    "schema.zed:2:13: invalid permission name 'view_': must not end with '_'",
);

error_case!(
    duplicate_definition,
    "definition user {}\ndefinition user {}",
    "schema.zed:2:12: duplicate name 'user': already used by the definition on line 1",
);

error_case!(
    caveat_named_like_a_definition,
    "definition user {}\ncaveat user(a int) {\n\ta == 1\n}",
    "schema.zed:2:8: duplicate name 'user': already used by the definition on line 1",
);

error_case!(
    relation_and_permission_share_names,
    "definition user {}\ndefinition doc {\n\trelation viewer: user\n\tpermission viewer = nil\n}",
    "schema.zed:4:13: duplicate name 'viewer' in definition 'doc': already used by the relation \
     on line 3",
);

// ---- relations

error_case!(
    unknown_subject_definition,
    "definition user {}\ndefinition doc {\n\trelation viewer: usr\n}",
    "schema.zed:3:19: unknown definition 'usr' in the subject types of relation 'viewer' (did you \
     mean 'user'?)",
);

error_case!(
    unknown_wildcard_definition,
    "definition user {}\ndefinition doc {\n\trelation viewer: user | nobody:*\n}",
    "schema.zed:3:26: unknown definition 'nobody' in the subject types of relation 'viewer'",
);

error_case!(
    unknown_subject_relation,
    "definition user {}\ndefinition group {\n\trelation member: user\n}\ndefinition doc \
     {\n\trelation viewer: group#membr\n}",
    "schema.zed:6:25: unknown relation or permission 'membr' on definition 'group' in the subject \
     types of relation 'viewer' (did you mean 'member'?)",
);

error_case!(
    duplicate_subject_type,
    "definition user {}\ndefinition doc {\n\trelation viewer: user | user#...\n}",
    "schema.zed:3:26: duplicate subject type 'user' in relation 'viewer'",
);

error_case!(
    duplicate_caveated_subject_type,
    "definition user {}\ncaveat cav(a int) { a == 1 }\ndefinition doc {\n\trelation viewer: \
     user:* with cav | user | user:* with cav\n}",
    "schema.zed:4:44: duplicate subject type 'user:* with cav' in relation 'viewer'",
);

error_case!(
    unknown_caveat,
    "definition user {}\ncaveat only_admins(a int) { a == 1 }\ndefinition doc {\n\trelation \
     viewer: user with only_admin\n}",
    "schema.zed:4:29: unknown caveat 'only_admin' in relation 'viewer' (did you mean \
     'only_admins'?)",
);

error_case!(
    with_expiration_needs_use_expiration,
    "definition user {}\ndefinition doc {\n\trelation viewer: user with expiration\n}",
    "schema.zed:3:29: unknown caveat 'expiration' in relation 'viewer' (to require an \
     expiration, add 'use expiration' at the top of the schema)",
);

error_case!(
    subject_relation_reaching_a_wildcard,
    "definition user {}\ndefinition group {\n\trelation member: user | user:*\n}\ndefinition \
     doc {\n\trelation viewer: group#member\n}",
    "schema.zed:6:19: relation 'viewer' allows 'group#member', which includes the wildcard \
     'user:*' via relation 'group#member'; wildcards cannot be included through a subject \
     relation",
);

error_case!(
    subject_relation_reaching_a_wildcard_in_two_steps,
    "definition user {}\ndefinition group {\n\trelation member: user:*\n}\ndefinition team \
     {\n\trelation member: group#member\n}\ndefinition doc {\n\trelation viewer: team#member\n}",
    // The first violation in the text is team's own relation.
    "schema.zed:6:19: relation 'member' allows 'group#member', which includes the wildcard \
     'user:*' via relation 'group#member'; wildcards cannot be included through a subject \
     relation",
);

// ---- permissions

error_case!(
    unknown_reference_in_permission,
    "definition user {}\n\ndefinition document {\n\trelation editor: user\n\trelation viewer: \
     user\n\n\tpermission view = editr + viewer\n}",
    "schema.zed:7:20: unknown relation or permission 'editr' in permission 'view' (did you mean \
     'editor'?)",
);

error_case!(
    self_is_not_supported,
    "definition doc {\n\tpermission view = self\n}",
    "schema.zed:2:20: unknown relation or permission 'self' in permission 'view' ('self' is not \
     supported)",
);

error_case!(
    unknown_arrow_relation,
    "definition doc {\n\trelation parent: doc\n\tpermission view = parnt->view\n}",
    "schema.zed:3:20: unknown relation 'parnt' on the left side of an arrow in permission 'view' \
     (did you mean 'parent'?)",
);

error_case!(
    permission_on_the_left_of_an_arrow,
    "definition doc {\n\trelation parent: doc\n\tpermission upper = parent\n\tpermission view = \
     upper.all(view)\n}",
    "schema.zed:4:20: 'upper' is a permission, but the left side of an arrow in permission 'view' \
     must be a relation",
);

error_case!(
    wildcard_on_the_left_of_an_arrow,
    "definition user {}\ndefinition doc {\n\trelation parent: doc | user:*\n\tpermission view = \
     parent->view\n}",
    "schema.zed:4:20: relation 'parent' on the left side of an arrow in permission 'view' \
     includes the wildcard 'user:*' via relation 'doc#parent'; arrows cannot walk wildcard \
     relations",
);

error_case!(
    wildcard_reached_through_a_subject_relation_on_the_left_of_an_arrow,
    "definition user {}\ndefinition doc {\n\trelation everyone: user:*\n\trelation parent: \
     doc#everyone\n\tpermission view = parent->view\n}",
    "schema.zed:5:20: relation 'parent' on the left side of an arrow in permission 'view' \
     includes the wildcard 'user:*' via relation 'doc#everyone'; arrows cannot walk wildcard \
     relations",
);

error_case!(
    permission_aliasing_itself,
    "definition doc {\n\tpermission view = view\n}",
    "schema.zed:2:20: permissions in definition 'doc' alias each other in a cycle: view -> view",
);

error_case!(
    permissions_aliasing_in_a_cycle,
    "definition doc {\n\tpermission edit = admin\n\tpermission view = edit\n\tpermission admin = \
     (view)\n}",
    "schema.zed:2:20: permissions in definition 'doc' alias each other in a cycle: edit -> admin \
     -> view -> edit",
);

// ---- caveats

error_case!(
    duplicate_caveat_parameter,
    "caveat cav(a int, a int) {\n\ta == 1\n}",
    "schema.zed:1:19: duplicate parameter 'a' in caveat 'cav'",
);

error_case!(
    unknown_caveat_parameter_type,
    "caveat cav(name strng) {\n\tname == 'x'\n}",
    "schema.zed:1:17: unknown type 'strng' for parameter 'name': expected one of any, bool, \
     bytes, double, duration, int, ipaddress, list<T>, map<T>, string, timestamp, uint (did you \
     mean 'string'?)",
);

error_case!(
    generic_type_without_argument,
    "caveat cav(names list) {\n\tnames == []\n}",
    "schema.zed:1:18: type 'list' takes 1 type argument, found 0",
);

error_case!(
    basic_type_with_argument,
    "caveat cav(count map<int<string>>) {\n\tcount.a == 1\n}",
    "schema.zed:1:22: type 'int' takes 0 type arguments, found 1",
);

error_case!(
    reserved_caveat_parameter_name,
    "caveat cav(in int) {\n\tin == 1\n}",
    "schema.zed:1:12: invalid caveat parameter name 'in': is a reserved word in caveat \
     expressions",
);

error_case!(
    unused_caveat_parameter,
    "caveat cav(a int, b string) {\n\ta == 1 && 'b' == b2 && a.b\n}",
    "schema.zed:1:19: parameter 'b' of caveat 'cav' is not used in its expression",
);

// ---- which error is reported

error_case!(
    earliest_error_in_the_text_wins,
    "definition doc {\n\tpermission view = viewr\n}\ndefinition doc {}\ndefinition Bad {}",
    "schema.zed:2:20: unknown relation or permission 'viewr' in permission 'view' (did you mean \
     'view'?)",
);

#[test]
fn error_fields_match_the_display() {
    let error = pemba_schema::compile("a/b.zed", "definition doc {\n\tpermission view = nil +\n}")
        .expect_err("missing operand");
    assert_eq!(
        (error.source_name.as_str(), error.line, error.column),
        ("a/b.zed", 3, 1)
    );
    assert_eq!(
        error.kind,
        pemba_schema::ErrorKind::Expected {
            expected: "an expression after '+'".into(),
            found: "'}'".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "a/b.zed:3:1: expected an expression after '+', found '}'"
    );
}

// ---- caveat expressions: cel-go's reports, placed as SpiceDB places them (checked against
// SpiceDB: an expression whose last token ends a statement carries its line break, so a
// following line exists and cel-go quotes it, empty)

error_case!(
    caveat_expression_undeclared_reference,
    "caveat cav(a int) {\n    a == b\n}",
    "schema.zed:2:5: invalid expression for caveat `cav`: ERROR: cav:2:10: undeclared \
     reference to 'b' (in container '')\n | \n | ^",
);

error_case!(
    caveat_expression_without_overload,
    "caveat cav(a int) {\n    a == 'x'\n}",
    "schema.zed:2:5: invalid expression for caveat `cav`: ERROR: cav:2:7: found no matching \
     overload for '_==_' applied to '(int, string)'",
);

error_case!(
    caveat_expression_on_the_first_line,
    "caveat cav(a int) { a == b }",
    "schema.zed:1:21: invalid expression for caveat `cav`: ERROR: cav:1:26: undeclared \
     reference to 'b' (in container '')\n | a == b\n | ......^",
);

error_case!(
    caveat_expression_of_another_type,
    "caveat cav(m map<any>) {\n    m.x\n}",
    "schema.zed:2:5: invalid expression for caveat `cav`: caveat expression must result in a \
     boolean value: found `dyn`",
);
