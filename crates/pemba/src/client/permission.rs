//! `pemba permission check|expand|lookup-resources|lookup-subjects`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use pemba_proto::authzed::api::v1 as api;
use pemba_types::{validate_object_type, ObjectRef, SubjectRef};
use serde_json::json;

use super::connection::Client;
use super::convert::{
    caveat_context, object_to_api, permission, subject_from_api, subject_to_api, subject_type,
};
use super::{json, print_json, print_json_line, print_line, rpc_error, ReadOptions};

#[derive(Subcommand, Debug)]
pub enum PermissionCommand {
    /// Print whether SUBJECT has PERMISSION on RESOURCE: `true`, `false` or `caveated`.
    Check(CheckArgs),
    /// Print the tree of subjects PERMISSION on RESOURCE expands to (one level of sets).
    Expand(ExpandArgs),
    /// Print the ids of the resources of TYPE on which SUBJECT has PERMISSION, one per line.
    LookupResources(LookupResourcesArgs),
    /// Print the subjects of a type that have PERMISSION on RESOURCE, one per line.
    LookupSubjects(LookupSubjectsArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// `type:id`
    resource: String,
    /// The permission or relation.
    permission: String,
    /// `type:id` or `type:id#relation`
    subject: String,
    /// Exit with 1 unless the subject has the permission unconditionally.
    #[arg(long)]
    error_on_no_permission: bool,
    /// Caveat context, a JSON object.
    #[arg(long, value_name = "JSON")]
    caveat_context: Option<String>,
    #[command(flatten)]
    read: ReadOptions,
}

impl CheckArgs {
    fn request(&self) -> anyhow::Result<api::CheckPermissionRequest> {
        Ok(api::CheckPermissionRequest {
            consistency: Some(self.read.consistency.to_api()),
            resource: Some(object_to_api(&ObjectRef::parse(&self.resource)?)),
            permission: permission(&self.permission)?,
            subject: Some(subject_to_api(&SubjectRef::parse(&self.subject)?)),
            context: caveat_context(self.caveat_context.as_deref())?,
            with_tracing: false,
        })
    }
}

#[derive(Args, Debug)]
pub struct ExpandArgs {
    /// `type:id`
    resource: String,
    /// The permission or relation.
    permission: String,
    #[command(flatten)]
    read: ReadOptions,
}

impl ExpandArgs {
    fn request(&self) -> anyhow::Result<api::ExpandPermissionTreeRequest> {
        Ok(api::ExpandPermissionTreeRequest {
            consistency: Some(self.read.consistency.to_api()),
            resource: Some(object_to_api(&ObjectRef::parse(&self.resource)?)),
            permission: permission(&self.permission)?,
        })
    }
}

#[derive(Args, Debug)]
pub struct LookupResourcesArgs {
    /// The resource type.
    resource_type: String,
    /// The permission or relation.
    permission: String,
    /// `type:id` or `type:id#relation`
    subject: String,
    /// Caveat context, a JSON object.
    #[arg(long, value_name = "JSON")]
    caveat_context: Option<String>,
    #[command(flatten)]
    read: ReadOptions,
}

impl LookupResourcesArgs {
    fn request(&self) -> anyhow::Result<api::LookupResourcesRequest> {
        validate_object_type(&self.resource_type)?;
        Ok(api::LookupResourcesRequest {
            consistency: Some(self.read.consistency.to_api()),
            resource_object_type: self.resource_type.clone(),
            permission: permission(&self.permission)?,
            subject: Some(subject_to_api(&SubjectRef::parse(&self.subject)?)),
            context: caveat_context(self.caveat_context.as_deref())?,
            ..Default::default()
        })
    }
}

#[derive(Args, Debug)]
pub struct LookupSubjectsArgs {
    /// `type:id`
    resource: String,
    /// The permission or relation.
    permission: String,
    /// `SUBJECT_TYPE[#RELATION]`
    subject_type: String,
    /// Caveat context, a JSON object.
    #[arg(long, value_name = "JSON")]
    caveat_context: Option<String>,
    #[command(flatten)]
    read: ReadOptions,
}

impl LookupSubjectsArgs {
    fn request(&self) -> anyhow::Result<api::LookupSubjectsRequest> {
        let (subject_object_type, optional_subject_relation) = subject_type(&self.subject_type)?;
        Ok(api::LookupSubjectsRequest {
            consistency: Some(self.read.consistency.to_api()),
            resource: Some(object_to_api(&ObjectRef::parse(&self.resource)?)),
            permission: permission(&self.permission)?,
            subject_object_type,
            optional_subject_relation,
            context: caveat_context(self.caveat_context.as_deref())?,
            ..Default::default()
        })
    }
}

pub async fn run(
    client: &Client,
    command: PermissionCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        PermissionCommand::Check(args) => {
            let has_permission = check(client, args.request()?, &args.read, json).await?;
            if args.error_on_no_permission && !has_permission {
                return Ok(ExitCode::FAILURE);
            }
        }
        PermissionCommand::Expand(args) => {
            expand(client, args.request()?, &args.read, json).await?
        }
        PermissionCommand::LookupResources(args) => {
            lookup_resources(client, args.request()?, &args.read, json).await?
        }
        PermissionCommand::LookupSubjects(args) => {
            lookup_subjects(client, args.request()?, &args.read, json).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks and prints the answer; returns whether the permission is held unconditionally.
async fn check(
    client: &Client,
    request: api::CheckPermissionRequest,
    read: &ReadOptions,
    json: bool,
) -> anyhow::Result<bool> {
    use api::check_permission_response::Permissionship;
    let response = client
        .permissions()
        .check_permission(client.request(request))
        .await
        .map_err(rpc_error)?
        .into_inner();
    read.show(response.checked_at.as_ref());
    let permissionship = response.permissionship();
    if json {
        print_json(&json!({
            "checkedAt": json::token(response.checked_at.as_ref()),
            "permissionship": permissionship.as_str_name(),
            "partialCaveatInfo": json::partial_caveat_info(response.partial_caveat_info.as_ref()),
        }))?;
    } else {
        print_line(match permissionship {
            Permissionship::HasPermission => "true".to_string(),
            Permissionship::ConditionalPermission => {
                match missing_context(response.partial_caveat_info.as_ref()) {
                    Some(missing) => format!("caveated (missing context: {missing})"),
                    None => "caveated".to_string(),
                }
            }
            _ => "false".to_string(),
        })?;
    }
    Ok(permissionship == Permissionship::HasPermission)
}

/// The context a conditional result is missing, as `a, b`.
fn missing_context(info: Option<&api::PartialCaveatInfo>) -> Option<String> {
    info.filter(|i| !i.missing_required_context.is_empty())
        .map(|i| i.missing_required_context.join(", "))
}

/// ` (caveated)` or ` (caveated, missing context: a, b)` after a looked-up id.
fn caveated(info: Option<&api::PartialCaveatInfo>) -> String {
    match missing_context(info) {
        Some(missing) => format!(" (caveated, missing context: {missing})"),
        None => " (caveated)".to_string(),
    }
}

async fn expand(
    client: &Client,
    request: api::ExpandPermissionTreeRequest,
    read: &ReadOptions,
    json: bool,
) -> anyhow::Result<()> {
    let response = client
        .permissions()
        .expand_permission_tree(client.request(request))
        .await
        .map_err(rpc_error)?
        .into_inner();
    read.show(response.expanded_at.as_ref());
    if json {
        print_json(&json!({
            "expandedAt": json::token(response.expanded_at.as_ref()),
            "treeRoot": response.tree_root.as_ref().map(json::tree),
        }))?;
    } else if let Some(root) = &response.tree_root {
        print_line(render(&TextTree::of(root), "").trim_end())?;
    }
    Ok(())
}

/// An expansion tree as labelled nodes, as zed prints it: each expanded `object#relation`, its
/// set operation, and the subjects of its leaves.
struct TextTree {
    label: String,
    children: Vec<TextTree>,
}

impl TextTree {
    fn of(tree: &api::PermissionRelationshipTree) -> TextTree {
        let label = match &tree.expanded_object {
            Some(o) => format!(
                "{}:{}#{}",
                o.object_type, o.object_id, tree.expanded_relation
            ),
            None => format!("#{}", tree.expanded_relation),
        };
        let children = Self::contents(tree, &label);
        TextTree { label, children }
    }

    /// The nodes under `tree`, whose label is `label`: its set operation, or its subjects.
    fn contents(tree: &api::PermissionRelationshipTree, label: &str) -> Vec<TextTree> {
        use api::permission_relationship_tree::TreeType;
        match &tree.tree_type {
            Some(TreeType::Intermediate(set)) => vec![TextTree {
                label: operation_name(set.operation()).to_string(),
                children: set
                    .children
                    .iter()
                    .flat_map(|c| Self::child(c, label))
                    .collect(),
            }],
            Some(TreeType::Leaf(set)) => set
                .subjects
                .iter()
                .map(|s| TextTree {
                    label: subject_from_api(Some(s)).to_string(),
                    children: Vec::new(),
                })
                .collect(),
            None => Vec::new(),
        }
    }

    /// A child of a set operation under `parent`; one that expands the same `object#relation`
    /// (a nested operation of the same permission) is spliced in without repeating the label.
    fn child(tree: &api::PermissionRelationshipTree, parent: &str) -> Vec<TextTree> {
        let node = Self::of(tree);
        if node.label == parent {
            node.children
        } else {
            vec![node]
        }
    }
}

fn operation_name(operation: api::algebraic_subject_set::Operation) -> &'static str {
    use api::algebraic_subject_set::Operation;
    match operation {
        Operation::Union => "union",
        Operation::Intersection => "intersection",
        Operation::Exclusion => "exclusion",
        Operation::Unspecified => "unspecified",
    }
}

/// The node's label, then its children drawn with box-drawing branches.
fn render(node: &TextTree, indent: &str) -> String {
    let mut out = format!("{}\n", node.label);
    for (i, child) in node.children.iter().enumerate() {
        let last = i + 1 == node.children.len();
        let (branch, continuation) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        out.push_str(indent);
        out.push_str(branch);
        out.push_str(&render(child, &format!("{indent}{continuation}")));
    }
    out
}

async fn lookup_resources(
    client: &Client,
    request: api::LookupResourcesRequest,
    read: &ReadOptions,
    json: bool,
) -> anyhow::Result<()> {
    use api::LookupPermissionship;
    let mut stream = client
        .permissions()
        .lookup_resources(client.request(request))
        .await
        .map_err(rpc_error)?
        .into_inner();
    let mut first = true;
    while let Some(r) = stream.message().await.map_err(rpc_error)? {
        if std::mem::take(&mut first) {
            read.show(r.looked_up_at.as_ref());
        }
        if json {
            print_json_line(&json!({
                "lookedUpAt": json::token(r.looked_up_at.as_ref()),
                "resourceObjectId": r.resource_object_id,
                "permissionship": r.permissionship().as_str_name(),
                "partialCaveatInfo": json::partial_caveat_info(r.partial_caveat_info.as_ref()),
            }))?;
        } else if r.permissionship() == LookupPermissionship::ConditionalPermission {
            let caveated = caveated(r.partial_caveat_info.as_ref());
            print_line(format_args!("{}{caveated}", r.resource_object_id))?;
        } else {
            print_line(&r.resource_object_id)?;
        }
    }
    Ok(())
}

async fn lookup_subjects(
    client: &Client,
    request: api::LookupSubjectsRequest,
    read: &ReadOptions,
    json: bool,
) -> anyhow::Result<()> {
    let subject_type = request.subject_object_type.clone();
    let relation = request.optional_subject_relation.clone();
    let mut stream = client
        .permissions()
        .lookup_subjects(client.request(request))
        .await
        .map_err(rpc_error)?
        .into_inner();
    let mut first = true;
    while let Some(r) = stream.message().await.map_err(rpc_error)? {
        if std::mem::take(&mut first) {
            read.show(r.looked_up_at.as_ref());
        }
        if json {
            print_json_line(&lookup_subjects_json(&r))?;
        } else {
            print_line(found_subject(&r, &subject_type, &relation))?;
        }
    }
    Ok(())
}

fn resolved_json(s: &api::ResolvedSubject) -> serde_json::Value {
    json!({
        "subjectObjectId": s.subject_object_id,
        "permissionship": s.permissionship().as_str_name(),
        "partialCaveatInfo": json::partial_caveat_info(s.partial_caveat_info.as_ref()),
    })
}

fn lookup_subjects_json(r: &api::LookupSubjectsResponse) -> serde_json::Value {
    let excluded: Vec<_> = r.excluded_subjects.iter().map(resolved_json).collect();
    json!({
        "lookedUpAt": json::token(r.looked_up_at.as_ref()),
        "subject": r.subject.as_ref().map(resolved_json),
        "excludedSubjects": excluded,
    })
}

/// `type:id[#relation]`, `(caveated…)` when conditional, and ` - {type:a, type:b}` after a
/// wildcard with exclusions.
fn found_subject(r: &api::LookupSubjectsResponse, subject_type: &str, relation: &str) -> String {
    let name = |id: &str| match relation {
        "" | "..." => format!("{subject_type}:{id}"),
        relation => format!("{subject_type}:{id}#{relation}"),
    };
    let (id, conditional, info) = match &r.subject {
        Some(s) => (
            s.subject_object_id.as_str(),
            s.permissionship() == api::LookupPermissionship::ConditionalPermission,
            s.partial_caveat_info.as_ref(),
        ),
        None => (r.subject_object_id.as_str(), false, None),
    };
    let mut line = name(id);
    if conditional {
        line.push_str(&caveated(info));
    }
    let excluded: Vec<String> = if r.excluded_subjects.is_empty() {
        r.excluded_subject_ids.iter().map(|id| name(id)).collect()
    } else {
        r.excluded_subjects
            .iter()
            .map(|s| name(&s.subject_object_id))
            .collect()
    };
    if !excluded.is_empty() {
        line.push_str(&format!(" - {{{}}}", excluded.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_render_with_branches() {
        let tree = TextTree {
            label: "document:plan#view".into(),
            children: vec![TextTree {
                label: "union".into(),
                children: vec![
                    TextTree {
                        label: "document:plan#viewer".into(),
                        children: vec![TextTree {
                            label: "user:tom".into(),
                            children: vec![],
                        }],
                    },
                    TextTree {
                        label: "document:plan#editor".into(),
                        children: vec![],
                    },
                ],
            }],
        };
        let expected = "\
document:plan#view
└── union
    ├── document:plan#viewer
    │   └── user:tom
    └── document:plan#editor
";
        assert_eq!(render(&tree, ""), expected);
    }
}
