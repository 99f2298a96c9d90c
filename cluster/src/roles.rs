//! What a node of a cluster does: `ingest`, `query`, `leader`, or several (`all` is the three).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One kind of work a node takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Takes records, acknowledges them after its own WAL's fsync, writes their Parquet files
    /// to the bucket and stages them for the leader to commit.
    Ingest,
    /// Answers queries and serves the console from the committed tables.
    Query,
    /// May hold the leader lease: commits (its own records and the ingest nodes' staged files),
    /// maintains the tables, evaluates alert rules and delivers notifications.
    Leader,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Ingest, Role::Query, Role::Leader];

    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Query => "query",
            Role::Leader => "leader",
        }
    }
}

/// The roles of one node: never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    ingest: bool,
    query: bool,
    leader: bool,
}

impl Default for Roles {
    /// `all`: one node doing everything, as a single server does.
    fn default() -> Self {
        Roles { ingest: true, query: true, leader: true }
    }
}

impl Roles {
    pub fn has(self, role: Role) -> bool {
        match role {
            Role::Ingest => self.ingest,
            Role::Query => self.query,
            Role::Leader => self.leader,
        }
    }

    pub fn is_all(self) -> bool {
        self == Roles::default()
    }

    pub fn list(self) -> Vec<Role> {
        Role::ALL.into_iter().filter(|r| self.has(*r)).collect()
    }

    fn from_list(roles: &[Role]) -> Roles {
        Roles {
            ingest: roles.contains(&Role::Ingest),
            query: roles.contains(&Role::Query),
            leader: roles.contains(&Role::Leader),
        }
    }
}

/// Why a roles setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("roles '{given}': {why} (use all, or one or more of ingest, query, leader separated by commas)")]
pub struct RolesError {
    given: String,
    why: String,
}

impl FromStr for Roles {
    type Err = RolesError;

    /// `all`, or a comma-separated list: `ingest`, `query,leader`.
    fn from_str(text: &str) -> Result<Roles, RolesError> {
        let refuse = |why: String| RolesError { given: text.to_string(), why };
        let mut roles = Vec::new();
        for word in text.split(',').map(str::trim) {
            let role = match word {
                "all" => {
                    return if text.trim() == "all" {
                        Ok(Roles::default())
                    } else {
                        Err(refuse("'all' stands alone".into()))
                    };
                }
                "ingest" => Role::Ingest,
                "query" => Role::Query,
                "leader" => Role::Leader,
                "" => return Err(refuse("a role is empty".into())),
                other => return Err(refuse(format!("unknown role '{other}'"))),
            };
            if roles.contains(&role) {
                return Err(refuse(format!("'{word}' is given twice")));
            }
            roles.push(role);
        }
        Ok(Roles::from_list(&roles))
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("all");
        }
        let names: Vec<&str> = self.list().into_iter().map(Role::name).collect();
        f.write_str(&names.join(","))
    }
}

impl Serialize for Roles {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Roles, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_or_a_list_of_distinct_known_roles() {
        assert!("all".parse::<Roles>().unwrap().is_all());
        assert!("ingest,query,leader".parse::<Roles>().unwrap().is_all());
        let ingest: Roles = "ingest".parse().unwrap();
        assert_eq!(ingest.list(), vec![Role::Ingest]);
        let two: Roles = " query , leader ".parse().unwrap();
        assert_eq!(two.list(), vec![Role::Query, Role::Leader]);
        assert_eq!(two.to_string(), "query,leader");
        assert_eq!(Roles::default().to_string(), "all");
        for (bad, why) in [
            ("", "empty"),
            ("ingest,", "empty"),
            ("writer", "unknown role 'writer'"),
            ("ingest,ingest", "twice"),
            ("all,query", "stands alone"),
        ] {
            let e = bad.parse::<Roles>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn roles_read_and_write_as_one_string() {
        let roles: Roles = serde_json::from_str(r#""ingest,query""#).unwrap();
        assert_eq!(serde_json::to_string(&roles).unwrap(), r#""ingest,query""#);
        assert!(serde_json::from_str::<Roles>(r#""reader""#).is_err());
    }
}
