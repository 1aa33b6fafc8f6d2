//! Arbitrary input never panics and whatever compiles round-trips through the printer. A small
//! deterministic mutation fuzzer stands in for the cargo-fuzz target (`fuzz/`) in ordinary runs.

use pemba_schema::compile;

use crate::assert_round_trip;

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pieces of schema syntax (and of non-syntax) that mutations splice in.
const FRAGMENTS: &[&str] = &[
    "definition ",
    "relation ",
    "permission ",
    "caveat ",
    "use expiration\n",
    " with ",
    " and ",
    "expiration",
    "nil",
    "{",
    "}",
    "(",
    ")",
    "<",
    ">",
    "->",
    ".any(",
    ".all(",
    "#",
    "...",
    ":*",
    ":",
    "|",
    " + ",
    " - ",
    " & ",
    " = ",
    ";",
    "\n",
    "\t",
    " ",
    "/",
    "//",
    "/*",
    "*/",
    "\"",
    "'",
    "'''",
    "user",
    "doc",
    "viewer",
    "member",
    "é",
    "文",
    "\r\n",
    ",",
    "int",
    "list<",
    "@",
    "`",
    "\0",
    "self",
    "import ",
    "x",
    "aaa",
    "definition user {}\n",
    "relation rel: user\n",
];

/// A random char boundary of `text`.
fn boundary(rng: &mut Rng, text: &str) -> usize {
    let mut at = rng.below(text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Line-level edits: they keep more of the syntax intact, so more mutants compile.
fn mutate_lines(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    for _ in 0..=rng.below(3) {
        if lines.len() < 2 {
            break;
        }
        let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
        match rng.below(3) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let copy = lines[j];
                lines.insert(i, copy);
            }
            _ => lines.swap(i, j),
        }
    }
    lines.join("\n")
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    if rng.below(2) == 0 {
        return mutate_lines(rng, text);
    }
    let mut out = text.to_string();
    for _ in 0..=rng.below(4) {
        let a = boundary(rng, &out);
        let b = boundary(rng, &out);
        let (start, end) = (a.min(b), a.max(b));
        let end = if end - start > 40 { start } else { end };
        match rng.below(4) {
            0 => out.insert_str(a, FRAGMENTS[rng.below(FRAGMENTS.len())]),
            1 => out.replace_range(start..end, ""),
            2 => {
                let piece = out[start..end].to_string();
                out.insert_str(end, &piece);
            }
            _ => out.replace_range(start..end, FRAGMENTS[rng.below(FRAGMENTS.len())]),
        }
    }
    out
}

/// Compiles `text`; if it compiles, it must round-trip. Returns whether it compiled.
fn exercise(text: &str) -> bool {
    match compile("fuzz.zed", text) {
        Ok(schema) => {
            assert_round_trip(&schema);
            true
        }
        Err(error) => {
            assert!(error.line >= 1 && error.column >= 1, "{error}");
            assert!(!error.to_string().is_empty());
            false
        }
    }
}

const SEEDS: &[&str] = &[
    "use expiration\n\n/** doc */\ncaveat cav(a int, b list<string>) {\n\ta == 1 && b.size() > \
     0\n}\n\ndefinition user {}\n\ndefinition group {\n\trelation member: user | group#member \
     with cav\n}\n\ndefinition doc {\n\t// parent\n\trelation parent: doc\n\trelation viewer: \
     user | user:* with expiration | group#member with cav and expiration\n\tpermission view = \
     (viewer + parent->view) & parent.all(view) - nil\n}",
    "definition org/team/user {}\ndefinition doc {\n\trelation owner: org/team/user\n\tpermission \
     edit = owner\n\tpermission view = edit + owner - (edit & owner)\n}",
];

#[test]
fn mutated_schemas_never_panic_and_round_trip() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut compiled = 0;
    for iteration in 0..4000 {
        let seed = SEEDS[iteration % SEEDS.len()];
        let mut text = mutate(&mut rng, seed);
        if rng.below(3) == 0 {
            text = mutate(&mut rng, &text);
        }
        if exercise(&text) {
            compiled += 1;
        }
    }
    assert!(
        compiled > 100,
        "mutations should often stay valid ({compiled} compiled)"
    );
}

#[test]
fn pathological_inputs_are_errors_not_crashes() {
    let huge = 200_000;
    let inputs = [
        format!(
            "definition doc {{\n\tpermission view = {}",
            "(".repeat(huge)
        ),
        format!(
            "definition doc {{\n\tpermission view = nil{}\n}}",
            " - nil".repeat(huge / 6)
        ),
        format!("caveat cav(a {}", "list<".repeat(huge)),
        format!("caveat cav(a int) {{ {} }}", "{".repeat(huge)),
        format!("definition {} {{}}", "a".repeat(huge)),
        format!(
            "definition doc {{\n\trelation viewer: {}\n}}",
            "b".repeat(huge)
        ),
        format!("definition {}doc {{}}", "abc/".repeat(huge / 4)),
        format!("/*{}", "*".repeat(huge)),
        format!("caveat cav(a string) {{ a == '{}", "x".repeat(huge)),
        "\u{0}\u{1}\u{7f}\u{feff}definition".to_string(),
        (0u8..128).map(char::from).collect(),
        "definition doc {\n\tpermission view = view\n\tpermission a = b\n}".to_string(),
    ];
    for input in &inputs {
        assert!(
            !exercise(input),
            "should not compile: {}",
            &input[..input.len().min(80)]
        );
    }
}

#[test]
fn many_definitions_with_long_alias_and_wildcard_chains() {
    let mut text = String::from("definition user {}\n");
    for i in 0..300 {
        text.push_str(&format!(
            "definition def{i:03} {{\n\trelation rel: user | def{:03}#rel\n\tpermission p{i:03} \
             = rel\n}}\n",
            (i + 1) % 300
        ));
    }
    assert!(exercise(&text));
    text.push_str("definition last {\n\trelation rel: user:*\n}\n");
    text = text.replace("def150#rel", "last#rel");
    assert!(
        !exercise(&text),
        "a wildcard is now reachable from def149#rel"
    );
}
