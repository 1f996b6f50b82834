//! Step 10 of the plan: the Worker's Spaces key (read-only, or read-write when the Worker takes
//! uploads) and the Worker secrets from provision's environment, decided from what the APIs
//! show (the key's name records its state; Cloudflare lists the Worker's secret names, or
//! answers that the script does not exist yet). Pure, like the rest of [`super`].

use super::{
    Action, Change, Desired, KeyState, Observed, Resource, SpacesKey, WorkerObserved,
    WorkerSecretsTarget,
};

/// The command that deploys the Worker, then the one that finishes the job.
pub const DEPLOY_THEN_APPLY: &str =
    "run `npx wrangler deploy`, then `cargo run -p provision -- apply`";

/// What the Worker's key may do on the bucket: `readwrite` when the Worker takes uploads
/// (`TOKEN_SECRET` is in provision's environment, or already among the Worker's secrets),
/// else `read`, which is all serving needs.
pub fn worker_key_permission(desired: &Desired, observed: &Observed) -> &'static str {
    let uploads = desired
        .env_worker_secrets
        .iter()
        .any(|n| n == "TOKEN_SECRET")
        || matches!(&observed.worker, WorkerObserved::Deployed { secrets }
            if secrets.iter().any(|s| s == "TOKEN_SECRET"));
    if uploads {
        "readwrite"
    } else {
        "read"
    }
}

/// Step 10: the Worker's key, and the keys to delete once it is handed over.
///
/// The key's name records its state: `<bucket>-worker-read-pending` from its creation until
/// its secret is handed over, then `<bucket>-worker-read`. Exactly one confirmed key (and, when
/// provision stores the Worker's secrets, both secrets present) is the Worker's key. Anything
/// else (pending keys left by an interrupted apply, several confirmed keys, missing secrets,
/// wrong grants) leaves no proof of which key the Worker holds: a fresh key is made and handed
/// over first, and only then are the others deleted, so the key in use is never deleted
/// before its replacement is stored.
pub(super) fn worker_key(desired: &Desired, observed: &Observed) -> (Change, Vec<String>) {
    let bucket = &desired.bucket;
    let name = &desired.worker_key_name;
    let where_to = match &desired.worker_secrets {
        WorkerSecretsTarget::Cloudflare { script, .. } => {
            format!("stored as Worker {script}'s secrets")
        }
        WorkerSecretsTarget::File(path) => {
            format!("written to {} for `wrangler secret bulk`", path.display())
        }
    };
    if observed.worker == WorkerObserved::NotDeployed {
        let script = match &desired.worker_secrets {
            WorkerSecretsTarget::Cloudflare { script, .. } => script.as_str(),
            WorkerSecretsTarget::File(_) => "",
        };
        return (
            Change::new(
                Resource::WorkerKey { access_key: None },
                Action::Wait,
                format!(
                    "{name}: the Worker {script} is not deployed yet (Cloudflare: script not \
                     found), so its secrets cannot be stored and no key is made: \
                     {DEPLOY_THEN_APPLY}"
                ),
            ),
            Vec::new(),
        );
    }
    let permission = worker_key_permission(desired, observed);
    // Without a view of the Worker's secrets, a key that may write is kept as it is: the
    // Worker may take uploads with a TOKEN_SECRET set by hand.
    let tolerated = |grant: &str| {
        grant == permission
            || (grant == "readwrite" && observed.worker == WorkerObserved::NotManaged)
    };
    let granted = |k: &SpacesKey| matches!(k.grants.as_slice(), [(b, grant)] if b == bucket && tolerated(grant));
    let secrets_present = match &observed.worker {
        WorkerObserved::Deployed { secrets } => crate::observe::WORKER_SECRET_NAMES
            .iter()
            .all(|n| secrets.iter().any(|s| s == n)),
        _ => true,
    };
    let all: Vec<String> = observed
        .worker_keys
        .iter()
        .map(|k| k.access_key.clone())
        .collect();
    match observed.worker_keys.as_slice() {
        [k] if k.state == KeyState::Confirmed && granted(k) && secrets_present => (
            Change::new(
                Resource::WorkerKey {
                    access_key: Some(k.access_key.clone()),
                },
                Action::Unchanged,
                format!("{name}: {permission} on {bucket}, {where_to}"),
            ),
            Vec::new(),
        ),
        [] => (
            Change::new(
                Resource::WorkerKey { access_key: None },
                Action::Create,
                format!("{name}: {permission} on {bucket}, {where_to}"),
            ),
            Vec::new(),
        ),
        keys => {
            let pending = keys.iter().filter(|k| k.state == KeyState::Pending).count();
            let confirmed = keys.len() - pending;
            let why = if pending > 0 {
                format!(
                    "{pending} key(s) left pending by an interrupted apply, so which key the \
                     Worker holds is unknown"
                )
            } else if confirmed > 1 {
                format!("{confirmed} keys by this name, so which one the Worker holds is unknown")
            } else if !secrets_present {
                "the Worker's secrets are missing (a secret is shown only once)".to_owned()
            } else {
                format!("the key's grants are not {permission} on {bucket} alone")
            };
            (
                Change::new(
                    Resource::WorkerKey { access_key: None },
                    Action::Replace,
                    format!(
                        "{name}: {why}: a new key with {permission} on {bucket}, {where_to}, \
                         then the others deleted"
                    ),
                ),
                all,
            )
        }
    }
}

/// When provision does not store the Worker's secrets, what to run for those set in its
/// environment (the commands name the variable; its value is never printed).
pub fn unmanaged_secret_notes(desired: &Desired) -> Vec<String> {
    if !matches!(desired.worker_secrets, WorkerSecretsTarget::File(_)) {
        return Vec::new();
    }
    desired
        .env_worker_secrets
        .iter()
        .map(|name| {
            format!(
                "${name} is set but provision does not manage the Worker's secrets (set \
                 CLOUDFLARE_ACCOUNT_ID and worker.name for that): run \
                 `printf %s \"${name}\" | npx wrangler secret put {name}`"
            )
        })
        .collect()
}

/// The Worker secrets from provision's environment: stored when the Worker lacks them. Their
/// values cannot be read back, so one that exists is left as it is.
pub(super) fn worker_env_secrets(desired: &Desired, observed: &Observed) -> Vec<Change> {
    let present: &[String] = match &observed.worker {
        WorkerObserved::NotManaged => return Vec::new(),
        WorkerObserved::NotDeployed => &[],
        WorkerObserved::Deployed { secrets } => secrets,
    };
    desired
        .env_worker_secrets
        .iter()
        .map(|name| {
            let resource = Resource::WorkerSecret { name: name.clone() };
            if observed.worker == WorkerObserved::NotDeployed {
                Change::new(
                    resource,
                    Action::Wait,
                    format!("from ${name}: the Worker is not deployed yet: {DEPLOY_THEN_APPLY}"),
                )
            } else if present.contains(name) {
                Change::new(
                    resource,
                    Action::Unchanged,
                    format!(
                        "exists (its value cannot be read back; to change it, run \
                         `npx wrangler secret put {name}`)"
                    ),
                )
            } else {
                Change::new(resource, Action::Create, format!("from ${name}"))
            }
        })
        .collect()
}
