//! `permissions:` at workflow and job level, checked as GitHub's parser checks it. The token's
//! scopes mean nothing to a local run, so the value is validated and then ignored.

use super::super::yaml::{Node, NodeKind};
use super::{Cx, describe, find_expression, is_null};

/// Which levels a scope takes.
#[derive(Clone, Copy)]
enum Levels {
    Any,
    ReadOrNone,
    WriteOrNone,
}

/// GitHub's scope names (workflow-v1.0.json in actions/runner).
const SCOPES: &[(&str, Levels)] = &[
    ("actions", Levels::Any),
    ("artifact-metadata", Levels::Any),
    ("attestations", Levels::Any),
    ("checks", Levels::Any),
    ("contents", Levels::Any),
    ("deployments", Levels::Any),
    ("discussions", Levels::Any),
    ("id-token", Levels::WriteOrNone),
    ("issues", Levels::Any),
    ("models", Levels::ReadOrNone),
    ("packages", Levels::Any),
    ("pages", Levels::Any),
    ("pull-requests", Levels::Any),
    ("repository-projects", Levels::Any),
    ("security-events", Levels::Any),
    ("statuses", Levels::Any),
    ("vulnerability-alerts", Levels::ReadOrNone),
];

impl Cx<'_> {
    /// `read-all`, `write-all`, `{}` or a mapping of scope → level.
    pub(super) fn permissions(&mut self, node: &Node) {
        match &node.kind {
            NodeKind::Scalar(s) if find_expression(&s.value).is_some() => {
                self.error(node.pos(), "expressions are not allowed in 'permissions'");
            }
            NodeKind::Scalar(s) if matches!(s.value.as_str(), "read-all" | "write-all") => {}
            NodeKind::Map(_) => {
                let known: Vec<&str> = SCOPES.iter().map(|(s, _)| *s).collect();
                let Some(entries) = self.mapping(node, "'permissions'", &known, &[]) else {
                    return;
                };
                for (scope, (_, v)) in entries {
                    let Some(&(_, levels)) = SCOPES.iter().find(|(s, _)| *s == scope) else {
                        continue;
                    };
                    let allowed: &[&str] = match levels {
                        Levels::Any => &["read", "write", "none"],
                        Levels::ReadOrNone => &["read", "none"],
                        Levels::WriteOrNone => &["write", "none"],
                    };
                    let value = match &v.kind {
                        NodeKind::Scalar(s) if !is_null(s) => Some(s.value.as_str()),
                        _ => None,
                    };
                    if !value.is_some_and(|l| allowed.contains(&l)) {
                        let found = value.map_or_else(|| describe(v), |l| format!("'{l}'"));
                        self.error(
                            v.pos(),
                            format!(
                                "permission '{scope}' must be {}, found {found}",
                                allowed.join(" or ")
                            ),
                        );
                    }
                }
            }
            _ => self.error(
                node.pos(),
                format!(
                    "'permissions' must be read-all, write-all or a mapping of scopes to read, write or none, found {}",
                    describe(node)
                ),
            ),
        }
    }
}
