//! Random test cases: a schema, relationships that satisfy it, and questions about them.
//!
//! Cases are acyclic by construction (an object only points to objects of earlier types, or of
//! its own type with a smaller id), so every answer is defined and neither side hits its depth
//! limit. The same seed always gives the same case.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// One differential test case, in the oracle's wire format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub schema: String,
    pub relationships: Vec<String>,
    pub checks: Vec<CheckQuery>,
    pub lookup_resources: Vec<LookupResourcesQuery>,
    pub lookup_subjects: Vec<LookupSubjectsQuery>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckQuery {
    pub resource: String,
    pub permission: String,
    pub subject: String,
    /// The request's caveat context (a JSON object), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupResourcesQuery {
    pub resource_type: String,
    pub permission: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupSubjectsQuery {
    pub resource: String,
    pub permission: String,
    pub subject_type: String,
    pub subject_relation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
}

/// One allowed subject of a relation, as generated.
#[derive(Debug, Clone, PartialEq)]
enum Allowed {
    User,
    UserWildcard,
    /// An object of type index `t`.
    Object(usize),
    /// `type#relation` for type index `t`, relation index `r` of that type.
    SubjectSet(usize, usize),
}

/// The caveats every case with caveats declares: two, with different parameters, so that
/// missing context names differ between branches.
const CAVEATS: &str = "caveat lvl(level int, required int) {\n    level >= required\n}\n\n\
                       caveat flag(on bool) {\n    on\n}\n";

/// What an allowed subject type requires besides its type: `with lvl`, `with flag`,
/// `with expiration`, or a caveat and expiration.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Traits {
    caveat: Option<&'static str>,
    expiration: bool,
}

#[derive(Debug, Clone)]
struct RelationSpec {
    name: String,
    allowed: Vec<Allowed>,
    /// The traits of each allowed subject type, in the same order.
    traits: Vec<Traits>,
}

#[derive(Debug, Clone)]
struct TypeSpec {
    name: String,
    relations: Vec<RelationSpec>,
    /// Permission names with their expression text.
    permissions: Vec<(String, String)>,
}

impl TypeSpec {
    fn members(&self) -> Vec<String> {
        self.relations
            .iter()
            .map(|r| r.name.clone())
            .chain(self.permissions.iter().map(|p| p.0.clone()))
            .collect()
    }
}

/// True if relation `r` of `relations` allows a wildcard, directly or through subject sets (which
/// the generator only ever points at earlier types or earlier relations, so this terminates).
fn includes_wildcard(relations: &[RelationSpec], types: &[TypeSpec], r: usize) -> bool {
    relations[r].allowed.iter().any(|a| match a {
        Allowed::UserWildcard => true,
        Allowed::SubjectSet(t, i) if *t < types.len() => {
            includes_wildcard(&types[*t].relations, types, *i)
        }
        Allowed::SubjectSet(_, i) => includes_wildcard(relations, types, *i),
        _ => false,
    })
}

const OBJECTS_PER_TYPE: usize = 4;
const USERS: usize = 4;

struct Generator {
    rng: ChaCha8Rng,
    types: Vec<TypeSpec>,
    /// This case declares caveats and uses them on some allowed subject types.
    caveats: bool,
    /// This case declares `use expiration` and has expiring relationships.
    expiration: bool,
}

/// Generates the case for `seed`; with `caveats_and_expiration`, about half the cases declare
/// caveats and a third expiration, and use them on relations, relationships and questions.
pub fn generate(seed: u64, caveats_and_expiration: bool) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let caveats = caveats_and_expiration && rng.gen_bool(0.5);
    let expiration = caveats_and_expiration && rng.gen_bool(0.3);
    let mut g = Generator {
        rng,
        types: Vec::new(),
        caveats,
        expiration,
    };
    let type_count = g.rng.gen_range(1..=3);
    for t in 0..type_count {
        let spec = g.type_spec(t);
        g.types.push(spec);
    }
    let relationships = g.relationships();
    let mut case = Case {
        schema: g.schema_text(),
        relationships,
        ..Case::default()
    };
    g.questions(&mut case);
    case
}

impl Generator {
    fn type_spec(&mut self, t: usize) -> TypeSpec {
        let name = format!("res{t}");
        let relation_count = self.rng.gen_range(1..=3);
        let mut relations: Vec<RelationSpec> = Vec::new();
        for r in 0..relation_count {
            let mut allowed = Vec::new();
            let mut traits = Vec::new();
            for _ in 0..self.rng.gen_range(1..=3) {
                let choice = match self.rng.gen_range(0..10) {
                    0..=3 => Allowed::User,
                    4 => Allowed::UserWildcard,
                    5..=6 => Allowed::Object(self.rng.gen_range(0..=t)),
                    _ => {
                        let target = self.rng.gen_range(0..=t);
                        // A subject set on the own type may only name an earlier relation. Relations
                        // that include a wildcard are never named: SpiceDB's check of that rule
                        // caches by relation name alone, so its verdict depends on map order.
                        let candidates: Vec<usize> = if target == t {
                            (0..r)
                                .filter(|&i| !includes_wildcard(&relations, &self.types, i))
                                .collect()
                        } else {
                            let other = &self.types[target].relations;
                            (0..other.len())
                                .filter(|&i| !includes_wildcard(other, &self.types, i))
                                .collect()
                        };
                        match candidates.choose(&mut self.rng) {
                            Some(&i) => Allowed::SubjectSet(target, i),
                            None => Allowed::User,
                        }
                    }
                };
                if !allowed.contains(&choice) {
                    allowed.push(choice);
                    traits.push(self.traits());
                }
            }
            relations.push(RelationSpec {
                name: format!("rel{r}"),
                allowed,
                traits,
            });
        }
        let mut spec = TypeSpec {
            name,
            relations,
            permissions: Vec::new(),
        };
        for p in 0..self.rng.gen_range(1..=3) {
            let expression = self.expression(&spec, t, 0);
            spec.permissions.push((format!("perm{p}"), expression));
        }
        spec
    }

    /// Random traits for one allowed subject type, as far as this case uses them.
    fn traits(&mut self) -> Traits {
        let caveat = (self.caveats && self.rng.gen_bool(0.4))
            .then(|| *["lvl", "flag"].choose(&mut self.rng).expect("caveats"));
        let expiration = self.expiration && self.rng.gen_bool(0.4);
        Traits { caveat, expiration }
    }

    /// A random permission expression over `spec`'s relations and earlier permissions.
    fn expression(&mut self, spec: &TypeSpec, t: usize, depth: usize) -> String {
        if depth < 2 && self.rng.gen_bool(0.55) {
            let op = ["+", "&", "-"][self.rng.gen_range(0..3)];
            let left = self.expression(spec, t, depth + 1);
            let right = self.expression(spec, t, depth + 1);
            return format!("({left} {op} {right})");
        }
        match self.rng.gen_range(0..10) {
            0 => "nil".to_string(),
            1..=3 => {
                if let Some(arrow) = self.arrow(spec, t) {
                    return arrow;
                }
                spec.relations[0].name.clone()
            }
            _ => {
                let members = spec.members();
                members
                    .choose(&mut self.rng)
                    .cloned()
                    .unwrap_or_else(|| spec.relations[0].name.clone())
            }
        }
    }

    /// `rel->member`, `rel.any(member)` or `rel.all(member)` over a relation with no wildcard, to a
    /// member of one of its object types (never a member of the type being built).
    fn arrow(&mut self, spec: &TypeSpec, t: usize) -> Option<String> {
        let candidates: Vec<(String, Vec<String>)> = spec
            .relations
            .iter()
            // Subject sets never lead to a wildcard (see `includes_wildcard`), so a direct one is the
            // only way a relation could include one.
            .filter(|r| !r.allowed.contains(&Allowed::UserWildcard))
            .filter_map(|r| {
                let targets: Vec<String> = r
                    .allowed
                    .iter()
                    .filter_map(|a| match a {
                        Allowed::Object(x) | Allowed::SubjectSet(x, _) if *x < t => {
                            Some(self.types[*x].members())
                        }
                        _ => None,
                    })
                    .flatten()
                    .collect();
                (!targets.is_empty()).then(|| (r.name.clone(), targets))
            })
            .collect();
        let (tupleset, targets) = candidates.choose(&mut self.rng)?.clone();
        let target = targets.choose(&mut self.rng)?.clone();
        Some(match self.rng.gen_range(0..4) {
            0 => format!("{tupleset}.any({target})"),
            1 => format!("{tupleset}.all({target})"),
            _ => format!("{tupleset}->{target}"),
        })
    }

    fn schema_text(&self) -> String {
        let mut text = String::new();
        if self.expiration {
            text.push_str("use expiration\n\n");
        }
        if self.caveats {
            text.push_str(CAVEATS);
            text.push('\n');
        }
        text.push_str("definition user {}\n");
        for spec in &self.types {
            text.push_str(&format!("\ndefinition {} {{\n", spec.name));
            for relation in &spec.relations {
                let allowed: Vec<String> = relation
                    .allowed
                    .iter()
                    .zip(&relation.traits)
                    .map(|(a, t)| {
                        let text = self.allowed_text(a);
                        match (t.caveat, t.expiration) {
                            (Some(c), true) => format!("{text} with {c} and expiration"),
                            (Some(c), false) => format!("{text} with {c}"),
                            (None, true) => format!("{text} with expiration"),
                            (None, false) => text,
                        }
                    })
                    .collect();
                text.push_str(&format!(
                    "    relation {}: {}\n",
                    relation.name,
                    allowed.join(" | ")
                ));
            }
            for (name, expression) in &spec.permissions {
                text.push_str(&format!("    permission {name} = {expression}\n"));
            }
            text.push_str("}\n");
        }
        text
    }

    fn allowed_text(&self, allowed: &Allowed) -> String {
        match allowed {
            Allowed::User => "user".to_string(),
            Allowed::UserWildcard => "user:*".to_string(),
            Allowed::Object(t) => self.types[*t].name.clone(),
            Allowed::SubjectSet(t, r) => format!(
                "{}#{}",
                self.types[*t].name, self.types[*t].relations[*r].name
            ),
        }
    }

    fn relationships(&mut self) -> Vec<String> {
        let mut relationships = Vec::new();
        for (t, spec) in self.types.clone().iter().enumerate() {
            for object in 0..OBJECTS_PER_TYPE {
                for relation in &spec.relations {
                    for (allowed, traits) in relation.allowed.iter().zip(&relation.traits) {
                        if !self.rng.gen_bool(0.3) {
                            continue;
                        }
                        // Same-type edges only point to smaller ids, so data stays acyclic.
                        let target_id = |rng: &mut ChaCha8Rng, target: usize| {
                            if target == t {
                                (object > 0).then(|| rng.gen_range(0..object))
                            } else {
                                Some(rng.gen_range(0..OBJECTS_PER_TYPE))
                            }
                        };
                        let subject = match allowed {
                            Allowed::User => {
                                Some(format!("user:u{}", self.rng.gen_range(0..USERS)))
                            }
                            Allowed::UserWildcard => Some("user:*".to_string()),
                            Allowed::Object(x) => target_id(&mut self.rng, *x)
                                .map(|id| format!("{}:o{id}", self.types[*x].name)),
                            Allowed::SubjectSet(x, r) => target_id(&mut self.rng, *x).map(|id| {
                                format!(
                                    "{}:o{id}#{}",
                                    self.types[*x].name, self.types[*x].relations[*r].name
                                )
                            }),
                        };
                        if let Some(subject) = subject {
                            let trailer = self.trailer(*traits);
                            relationships.push(format!(
                                "{}:o{object}#{}@{subject}{trailer}",
                                spec.name, relation.name
                            ));
                        }
                    }
                }
            }
        }
        relationships.sort();
        // One relationship per resource, relation and subject, whatever its caveat.
        relationships.dedup_by(|a, b| a.split('[').next() == b.split('[').next());
        relationships
    }

    /// `[caveat:{context}]` and `[expiration:…]` for a relationship of a subject type with
    /// `traits`: a written context that is empty, partial or complete; an expiration in the past
    /// or far in the future.
    fn trailer(&mut self, traits: Traits) -> String {
        let mut trailer = String::new();
        if let Some(caveat) = traits.caveat {
            let mut context = self.context_for(caveat);
            if context.is_empty() {
                trailer.push_str(&format!("[{caveat}]"));
            } else {
                // The written context never fixes every parameter of `lvl`, or every answer
                // would be decided before the request's context is read.
                if caveat == "lvl" && context.len() == 2 && self.rng.gen_bool(0.5) {
                    context.remove("level");
                }
                trailer.push_str(&format!("[{caveat}:{}]", Value::Object(context)));
            }
        }
        if traits.expiration {
            let at = if self.rng.gen_bool(0.5) {
                "2001-01-01T00:00:00Z"
            } else {
                "2300-01-01T00:00:00Z"
            };
            trailer.push_str(&format!("[expiration:{at}]"));
        }
        trailer
    }

    /// Random values for some of `caveat`'s parameters.
    fn context_for(&mut self, caveat: &str) -> Map<String, Value> {
        let mut context = Map::new();
        match caveat {
            "lvl" => {
                if self.rng.gen_bool(0.5) {
                    context.insert("level".into(), json!(self.rng.gen_range(0..4)));
                }
                if self.rng.gen_bool(0.6) {
                    context.insert("required".into(), json!(self.rng.gen_range(0..4)));
                }
            }
            _ => {
                if self.rng.gen_bool(0.5) {
                    context.insert("on".into(), json!(self.rng.gen_bool(0.5)));
                }
            }
        }
        context
    }

    /// A request context for a question: none, or values for some parameters of the caveats.
    fn request_context(&mut self) -> Option<Map<String, Value>> {
        if !self.caveats || self.rng.gen_bool(0.4) {
            return None;
        }
        let mut context = self.context_for("lvl");
        context.extend(self.context_for("flag"));
        Some(context)
    }

    fn questions(&mut self, case: &mut Case) {
        let users: Vec<String> = (0..USERS + 1).map(|u| format!("user:u{u}")).collect();
        for spec in self.types.clone() {
            let members = spec.members();
            for _ in 0..6 {
                let object = format!("{}:o{}", spec.name, self.rng.gen_range(0..OBJECTS_PER_TYPE));
                let permission = members
                    .choose(&mut self.rng)
                    .expect("types have members")
                    .clone();
                let subject = if self.rng.gen_bool(0.8) {
                    users.choose(&mut self.rng).expect("users").clone()
                } else {
                    let other = self.types.choose(&mut self.rng).expect("types").clone();
                    let relation = other.relations.choose(&mut self.rng).expect("relations");
                    format!(
                        "{}:o{}#{}",
                        other.name,
                        self.rng.gen_range(0..OBJECTS_PER_TYPE),
                        relation.name
                    )
                };
                let context = self.request_context();
                case.checks.push(CheckQuery {
                    resource: object,
                    permission,
                    subject,
                    context,
                });
            }
            for _ in 0..2 {
                let permission = members.choose(&mut self.rng).expect("members").clone();
                let subject = users.choose(&mut self.rng).expect("users").clone();
                let context = self.request_context();
                case.lookup_resources.push(LookupResourcesQuery {
                    resource_type: spec.name.clone(),
                    permission,
                    subject,
                    context,
                });
            }
            for _ in 0..2 {
                let permission = members.choose(&mut self.rng).expect("members").clone();
                let resource =
                    format!("{}:o{}", spec.name, self.rng.gen_range(0..OBJECTS_PER_TYPE));
                let context = self.request_context();
                case.lookup_subjects.push(LookupSubjectsQuery {
                    resource,
                    permission,
                    subject_type: "user".to_string(),
                    subject_relation: None,
                    context,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_valid() {
        for seed in 0..200 {
            let case = generate(seed, seed % 2 == 0);
            assert_eq!(case, generate(seed, seed % 2 == 0));
            let schema = pemba_schema::compile("gen.zed", &case.schema)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", case.schema));
            for r in &case.relationships {
                let parsed = pemba_types::Relationship::parse(r).unwrap();
                pemba_engine::validate_relationship(&schema, &parsed)
                    .unwrap_or_else(|e| panic!("seed {seed}: {r}: {e}"));
            }
        }
    }
}
