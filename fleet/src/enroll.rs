//! Enrollment: tokens an admin makes for a group, and the enrollment of a host with one, which
//! gives the host its own ingest key bound to its `Computer` and to the agent's tables.
//!
//! A stolen token cannot take over an enrolled host: a `Computer` that has an active key is
//! enrolled again only once an admin allowed it ([`Fleet::allow_reenrollment`]), and that
//! enrollment revokes the host's old key.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::keys::Role;
use crate::state::{FleetFile, StoredKey, StoredToken};
use crate::{AGENT_TABLES, Fleet, FleetError, check_name, hash, hash_text, secret, stored_hash};

/// A new enrollment token's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub group: String,
    /// How long the token is valid (`7d`, `12h`) [default: no expiry].
    #[serde(default, with = "fimlake_settings::duration::option")]
    pub expires: Option<Duration>,
    /// How many hosts may enroll with it [default: no limit].
    #[serde(default)]
    pub max_uses: Option<u32>,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub group: String,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub revoked: bool,
}

/// A token just made: the secret, shown once.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub view: TokenView,
}

/// What a host enrolled with: its key (shown once), its name, its `Computer` and group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolled {
    pub key: String,
    pub key_name: String,
    pub computer: String,
    pub group: String,
}

/// Why an enrollment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("the enrollment token is not valid")]
    UnknownToken,
    #[error("enrollment token {0} was revoked")]
    Revoked(String),
    #[error("enrollment token {id} expired at {at}")]
    Expired { id: String, at: DateTime<Utc> },
    #[error("enrollment token {id} was used {uses} times, its maximum")]
    UsedUp { id: String, uses: u32 },
    #[error(
        "computer '{computer}' is already enrolled (key '{key}'); an admin must allow its re-enrollment first: \
         fimlake keys allow-reenrollment {computer}"
    )]
    AlreadyEnrolled { computer: String, key: String },
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

impl StoredToken {
    fn view(&self) -> TokenView {
        TokenView {
            id: self.id.clone(),
            group: self.group.clone(),
            created: self.created,
            expires: self.expires,
            max_uses: self.max_uses,
            uses: self.uses,
            revoked: self.revoked.is_some(),
        }
    }

    /// Why this token cannot enroll one more host now, if it cannot.
    fn refusal(&self, now: DateTime<Utc>) -> Option<EnrollError> {
        if self.revoked.is_some() {
            return Some(EnrollError::Revoked(self.id.clone()));
        }
        if let Some(at) = self.expires.filter(|at| *at <= now) {
            return Some(EnrollError::Expired { id: self.id.clone(), at });
        }
        if self.max_uses.is_some_and(|max| self.uses >= max) {
            return Some(EnrollError::UsedUp { id: self.id.clone(), uses: self.uses });
        }
        None
    }
}

impl Fleet {
    /// Makes an enrollment token for a group.
    pub fn create_token(&self, new: NewToken) -> Result<CreatedToken, FleetError> {
        check_name("group", &new.group)?;
        if new.max_uses == Some(0) {
            return Err(FleetError::Invalid("max_uses must be at least 1".into()));
        }
        let created = Utc::now();
        let expires = match new.expires {
            None => None,
            Some(d) => Some(created + chrono::Duration::from_std(d).map_err(|e| FleetError::Invalid(e.to_string()))?),
        };
        let token = secret("fle_");
        let stored = StoredToken {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            hash: hash_text(&token),
            group: new.group,
            created,
            expires,
            max_uses: new.max_uses,
            uses: 0,
            revoked: None,
        };
        let view = stored.view();
        self.change(|state| {
            state.tokens.push(stored);
            Ok(())
        })?;
        Ok(CreatedToken { token, view })
    }

    pub fn list_tokens(&self) -> Vec<TokenView> {
        self.state.read().expect("fleet state lock").tokens.iter().map(StoredToken::view).collect()
    }

    /// Revokes a token: no more enrollments with it (the keys it gave stay).
    pub fn revoke_token(&self, id: &str) -> Result<TokenView, FleetError> {
        self.change(|state| {
            let token = state
                .tokens
                .iter_mut()
                .find(|t| t.id == id)
                .ok_or_else(|| FleetError::NotFound(format!("no enrollment token '{id}'")))?;
            token.revoked.get_or_insert_with(Utc::now);
            Ok(token.view())
        })
    }

    /// Lets `computer`, which has a key, enroll once more (its old key is revoked then).
    pub fn allow_reenrollment(&self, computer: &str) -> Result<(), FleetError> {
        check_computer(computer)?;
        self.change(|state| {
            if !state.reenrollment.iter().any(|c| c == computer) {
                state.reenrollment.push(computer.to_string());
            }
            Ok(())
        })
    }

    /// Enrolls a host: checks the token and the `Computer`, makes the host's ingest key
    /// (`agent-<computer>`, bound to it and to the agent's tables) and counts the use.
    /// A refusal changes nothing.
    pub fn enroll(&self, token: &str, computer: &str) -> Result<Enrolled, EnrollError> {
        check_computer(computer)?;
        let key_name = format!("agent-{computer}");
        if let Some(holder) = self.configured_holder(computer, &key_name) {
            return Err(EnrollError::AlreadyEnrolled { computer: computer.into(), key: holder });
        }
        self.change(|state| {
            let now = Utc::now();
            let index = find_token(&state.tokens, token).ok_or(EnrollError::UnknownToken)?;
            if let Some(refusal) = state.tokens[index].refusal(now) {
                return Err(refusal);
            }
            take_over(state, computer, now)?;
            let token = &mut state.tokens[index];
            token.uses += 1;
            let group = token.group.clone();
            let key = secret("flk_");
            state.keys.retain(|k| k.name != key_name);
            state.keys.push(agent_key(&key_name, &key, computer, &group, now));
            Ok(Enrolled { key, key_name, computer: computer.into(), group })
        })
    }

    /// The name of the configuration file's key that holds `computer` (or `key_name`), if one does.
    fn configured_holder(&self, computer: &str, key_name: &str) -> Option<String> {
        let holder = self.configured.iter().find(|k| k.name == key_name || k.computer.as_deref() == Some(computer))?;
        Some(holder.name.clone())
    }

    /// The id of the token `token` is, for the audit log (none when it is not one).
    pub fn token_id(&self, token: &str) -> Option<String> {
        let state = self.state.read().expect("fleet state lock");
        find_token(&state.tokens, token).map(|index| state.tokens[index].id.clone())
    }
}

/// Where the token whose secret is `token` is (compared in constant time).
fn find_token(tokens: &[StoredToken], token: &str) -> Option<usize> {
    let presented = hash(token);
    tokens.iter().position(|t| stored_hash(&t.hash).is_some_and(|stored| bool::from(stored.ct_eq(&presented))))
}

/// Makes way for a new key of `computer`: refused while it has an active key, unless an admin
/// allowed its re-enrollment (used up here); the old keys are revoked.
fn take_over(state: &mut FleetFile, computer: &str, now: DateTime<Utc>) -> Result<(), EnrollError> {
    let holds = |k: &StoredKey| k.revoked.is_none() && k.computer.as_deref() == Some(computer);
    if let Some(existing) = state.keys.iter().find(|k| holds(k)) {
        let Some(allowed) = state.reenrollment.iter().position(|c| c == computer) else {
            return Err(EnrollError::AlreadyEnrolled { computer: computer.into(), key: existing.name.clone() });
        };
        state.reenrollment.remove(allowed);
    }
    for old in state.keys.iter_mut().filter(|k| holds(k)) {
        old.revoked = Some(now);
    }
    Ok(())
}

/// An enrolled host's key: ingest, bound to its `Computer` and the agent's tables.
fn agent_key(name: &str, key: &str, computer: &str, group: &str, now: DateTime<Utc>) -> StoredKey {
    StoredKey {
        name: name.to_string(),
        hash: hash_text(key),
        role: Role::Ingest,
        computer: Some(computer.to_string()),
        tables: Some(AGENT_TABLES.iter().map(|t| t.to_string()).collect()),
        group: Some(group.to_string()),
        created: now,
        last_used: None,
        revoked: None,
    }
}

/// A `Computer` to enroll: 1 to 255 characters, none of them a control character or a space.
fn check_computer(computer: &str) -> Result<(), FleetError> {
    if computer.is_empty() || computer.len() > 255 || computer.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(FleetError::Invalid(format!(
            "computer name '{computer}' must be 1 to 255 characters without spaces or control characters"
        )));
    }
    Ok(())
}
