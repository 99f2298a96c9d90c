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
use crate::state::{StoredKey, StoredToken};
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
    pub fn enroll(&self, token: &str, computer: &str) -> Result<Enrolled, EnrollError> {
        check_computer(computer)?;
        let key = secret("flk_");
        let key_name = format!("agent-{computer}");
        if self.configured.iter().any(|k| k.name == key_name || k.computer.as_deref() == Some(computer)) {
            let key = self
                .configured
                .iter()
                .find(|k| k.computer.as_deref() == Some(computer))
                .map_or(key_name.clone(), |k| k.name.clone());
            return Err(EnrollError::AlreadyEnrolled { computer: computer.into(), key });
        }
        let presented = hash(token);
        let mut outcome: Result<Enrolled, EnrollError> = Err(EnrollError::UnknownToken);
        let change = self.change(|state| {
            let now = Utc::now();
            let Some(index) = state
                .tokens
                .iter()
                .position(|t| stored_hash(&t.hash).is_some_and(|stored| bool::from(stored.ct_eq(&presented))))
            else {
                return Ok(());
            };
            if let Some(refusal) = state.tokens[index].refusal(now) {
                outcome = Err(refusal);
                return Ok(());
            }
            let existing = state.keys.iter().find(|k| k.revoked.is_none() && k.computer.as_deref() == Some(computer));
            if let Some(existing) = existing {
                let Some(allowed) = state.reenrollment.iter().position(|c| c == computer) else {
                    outcome =
                        Err(EnrollError::AlreadyEnrolled { computer: computer.into(), key: existing.name.clone() });
                    return Ok(());
                };
                state.reenrollment.remove(allowed);
            }
            for old in state.keys.iter_mut().filter(|k| k.revoked.is_none() && k.computer.as_deref() == Some(computer))
            {
                old.revoked = Some(now);
            }
            state.keys.retain(|k| k.name != key_name);
            let token = &mut state.tokens[index];
            token.uses += 1;
            let group = token.group.clone();
            state.keys.push(StoredKey {
                name: key_name.clone(),
                hash: hash_text(&key),
                role: Role::Ingest,
                computer: Some(computer.to_string()),
                tables: Some(AGENT_TABLES.iter().map(|t| t.to_string()).collect()),
                group: Some(group.clone()),
                created: now,
                last_used: None,
                revoked: None,
            });
            outcome = Ok(Enrolled { key: key.clone(), key_name: key_name.clone(), computer: computer.into(), group });
            Ok(())
        });
        change?;
        outcome
    }

    /// The id of the token `token` is, for the audit log (none when it is not one).
    pub fn token_id(&self, token: &str) -> Option<String> {
        let presented = hash(token);
        let state = self.state.read().expect("fleet state lock");
        state
            .tokens
            .iter()
            .find(|t| stored_hash(&t.hash).is_some_and(|stored| bool::from(stored.ct_eq(&presented))))
            .map(|t| t.id.clone())
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
