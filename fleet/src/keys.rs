//! API keys made at runtime: create, list, rotate, revoke, and the lookup of a presented key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::state::StoredKey;
use crate::{Fleet, FleetError, check_name, hash, hash_text, secret, stored_hash};

/// What a key may do (see the server's `auth` module for the routes of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Ingest,
    Query,
    Admin,
}

/// The scope rules of every key, wherever it is made (the API, the configuration file, the
/// offline CLI): a computer and tables bind ingest keys only, and each table must be one of `known`.
pub fn check_scope(
    role: Role,
    computer: Option<&str>,
    tables: Option<&[String]>,
    known: &[impl AsRef<str>],
) -> Result<(), FleetError> {
    if role != Role::Ingest && (computer.is_some() || tables.is_some()) {
        return Err(FleetError::Invalid("computer and tables apply to ingest keys only".into()));
    }
    for table in tables.into_iter().flatten() {
        if !known.iter().any(|k| k.as_ref() == table) {
            let names: Vec<&str> = known.iter().map(|k| k.as_ref()).collect();
            return Err(FleetError::Invalid(format!("table '{table}' does not exist (tables: {})", names.join(", "))));
        }
    }
    Ok(())
}

/// A new key: who holds it, its role and, for an ingest key, its bindings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub computer: Option<String>,
    #[serde(default)]
    pub tables: Option<Vec<String>>,
}

/// A key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyView {
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
    pub state: KeyState,
    /// `configuration` (the server's file: read-only here) or `api`.
    pub source: KeySource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Active,
    Revoked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    Configuration,
    Api,
}

/// A key just made: the secret, shown once, and the key as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
}

/// What a presented key grants.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub name: String,
    pub role: Role,
    pub computer: Option<String>,
    pub tables: Option<Vec<String>>,
}

impl StoredKey {
    fn view(&self) -> KeyView {
        KeyView {
            name: self.name.clone(),
            role: self.role,
            computer: self.computer.clone(),
            tables: self.tables.clone(),
            group: self.group.clone(),
            created: Some(self.created),
            last_used: self.last_used,
            state: if self.revoked.is_some() { KeyState::Revoked } else { KeyState::Active },
            source: KeySource::Api,
        }
    }
}

impl Fleet {
    /// Makes a key. Its name must be new (a revoked key's name may be reused); bindings are
    /// for ingest keys only, to tables that exist.
    pub fn create_key(&self, new: NewKey) -> Result<Created, FleetError> {
        self.check_new_key(&new)?;
        let key = secret("flk_");
        let stored = StoredKey {
            name: new.name.clone(),
            hash: hash_text(&key),
            role: new.role,
            computer: new.computer,
            tables: new.tables,
            group: None,
            created: Utc::now(),
            last_used: None,
            revoked: None,
        };
        self.insert_key(stored, &key)
    }

    /// Stores a key, replacing a revoked one of the same name; refuses a name in use.
    pub(crate) fn insert_key(&self, stored: StoredKey, key: &str) -> Result<Created, FleetError> {
        self.check_name_free(&stored.name)?;
        let view = stored.view();
        self.change(|state| {
            if state.keys.iter().any(|k| k.name == stored.name && k.revoked.is_none()) {
                return Err(FleetError::Conflict(format!("a key named '{}' exists", stored.name)));
            }
            state.keys.retain(|k| k.name != stored.name);
            state.keys.push(stored);
            Ok(())
        })?;
        Ok(Created { key: key.to_string(), view })
    }

    fn check_new_key(&self, new: &NewKey) -> Result<(), FleetError> {
        check_name("key name", &new.name)?;
        check_scope(new.role, new.computer.as_deref(), new.tables.as_deref(), &self.tables)
    }

    fn check_name_free(&self, name: &str) -> Result<(), FleetError> {
        if self.configured.iter().any(|k| k.name == name) {
            return Err(FleetError::Conflict(format!("a key named '{name}' is in the server's configuration file")));
        }
        Ok(())
    }

    /// Every key, the configuration file's first; never a secret.
    pub fn list_keys(&self) -> Vec<KeyView> {
        let used = self.last_used.lock().expect("last used lock").clone();
        let state = self.state.read().expect("fleet state lock");
        let api = state.keys.iter().map(|k| {
            let mut view = k.view();
            if let Some(at) = used.get(&k.name) {
                view.last_used = Some(view.last_used.map_or(*at, |before| before.max(*at)));
            }
            view
        });
        self.configured.iter().cloned().chain(api).collect()
    }

    /// Revokes a key at once: its next request gets 401.
    pub fn revoke_key(&self, name: &str) -> Result<KeyView, FleetError> {
        self.refuse_configured(name, "revoked")?;
        self.change(|state| {
            let key = active_key(state, name)?;
            key.revoked = Some(Utc::now());
            Ok(key.view())
        })
    }

    /// A new secret for a key; the old one stops working at once.
    pub fn rotate_key(&self, name: &str) -> Result<Created, FleetError> {
        self.refuse_configured(name, "rotated")?;
        let key = secret("flk_");
        let view = self.change(|state| {
            let stored = active_key(state, name)?;
            stored.hash = hash_text(&key);
            Ok(stored.view())
        })?;
        Ok(Created { key, view })
    }

    fn refuse_configured(&self, name: &str, what: &str) -> Result<(), FleetError> {
        if self.configured.iter().any(|k| k.name == name) {
            return Err(FleetError::Conflict(format!(
                "key '{name}' is defined in the server's configuration file and cannot be {what} through the API; \
                 change it there"
            )));
        }
        Ok(())
    }

    /// Whether any key made here is active (the server then requires keys).
    pub fn has_active_keys(&self) -> bool {
        self.state.read().expect("fleet state lock").keys.iter().any(|k| k.revoked.is_none())
    }

    /// The active key whose secret is `presented`: every active key's hash is compared, in
    /// constant time. Notes the use.
    pub fn find(&self, presented: &str) -> Option<Grant> {
        let presented = hash(presented);
        let state = self.state.read().expect("fleet state lock");
        let mut found = None;
        for key in state.keys.iter().filter(|k| k.revoked.is_none()) {
            let Some(stored) = stored_hash(&key.hash) else { continue };
            if bool::from(stored.ct_eq(&presented)) {
                found = Some(key);
            }
        }
        let key = found?;
        self.last_used.lock().expect("last used lock").insert(key.name.clone(), Utc::now());
        Some(Grant {
            name: key.name.clone(),
            role: key.role,
            computer: key.computer.clone(),
            tables: key.tables.clone(),
        })
    }
}

fn active_key<'s>(state: &'s mut crate::state::FleetFile, name: &str) -> Result<&'s mut StoredKey, FleetError> {
    state
        .keys
        .iter_mut()
        .find(|k| k.name == name && k.revoked.is_none())
        .ok_or_else(|| FleetError::NotFound(format!("no active key named '{name}'")))
}
