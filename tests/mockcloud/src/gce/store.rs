//! The emulated zone's records: instances and operations, with their states derived from time
//! (an instance provisions until its insert operation is due; a deleted one lingers, STOPPING,
//! until its delete operation is due).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdvm_provider_api::VmId;
use serde_json::{json, Value};

/// `(project, zone, name)`.
pub(crate) type Key = (String, String, String);

/// An operation's failure: `error.errors[0]` and the HTTP status GCE reports with it.
#[derive(Debug, Clone)]
pub(crate) struct OpError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) http_status: u16,
    pub(crate) http_message: &'static str,
}

#[derive(Debug)]
pub(crate) struct Operation {
    pub(crate) id: u64,
    pub(crate) op_type: &'static str,
    pub(crate) target: String,
    pub(crate) target_id: u64,
    pub(crate) started: String,
    pub(crate) done_at: Instant,
    pub(crate) error: Option<OpError>,
}

#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) id: u64,
    /// The body as inserted.
    pub(crate) resource: Value,
    pub(crate) machine_type: String,
    pub(crate) series: &'static str,
    pub(crate) created: String,
    pub(crate) created_at: Instant,
    pub(crate) ready_at: Instant,
    /// When deletion completes (the record disappears then).
    pub(crate) gone_at: Option<Instant>,
    /// The local guest booted for it.
    pub(crate) guest: Option<VmId>,
    /// Why it is TERMINATED (the guest powered off, or it could not boot).
    pub(crate) terminated: Option<String>,
}

impl Instance {
    pub(crate) fn status(&self, now: Instant) -> &'static str {
        if self.gone_at.is_some() {
            "STOPPING"
        } else if self.terminated.is_some() {
            "TERMINATED"
        } else if now >= self.ready_at {
            "RUNNING"
        } else if now < self.created_at + (self.ready_at - self.created_at) / 2 {
            "PROVISIONING"
        } else {
            "STAGING"
        }
    }
}

/// Everything the emulated Compute Engine holds.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) instances: BTreeMap<Key, Instance>,
    pub(crate) operations: HashMap<Key, Operation>,
    /// `(project, zone, requestId)` → operation name: a repeated request gets the same operation.
    pub(crate) requests: HashMap<Key, String>,
    next_id: u64,
}

impl Store {
    /// A fresh numeric resource id.
    pub(crate) fn id(&mut self) -> u64 {
        self.next_id += 1;
        4_000_000_000_000_000_000 + self.next_id
    }

    /// Drops instances whose deletion has completed.
    pub(crate) fn sweep(&mut self, now: Instant) {
        self.instances
            .retain(|_, i| i.gone_at.is_none_or(|gone| gone > now));
    }

    /// Records an operation on `target` finishing after `delay`; returns its name.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn operation(
        &mut self,
        project: &str,
        zone: &str,
        op_type: &'static str,
        target: &str,
        target_id: u64,
        done_at: Instant,
        error: Option<OpError>,
        request_id: Option<&str>,
    ) -> String {
        let id = self.id();
        let name = format!("operation-{}-{id:x}", unix_ms());
        self.operations.insert(
            (project.into(), zone.into(), name.clone()),
            Operation {
                id,
                op_type,
                target: target.into(),
                target_id,
                started: timestamp(),
                done_at,
                error,
            },
        );
        if let Some(r) = request_id {
            self.requests
                .insert((project.into(), zone.into(), r.into()), name.clone());
        }
        name
    }

    /// The operation a repeated `requestId` refers to.
    pub(crate) fn replay(
        &self,
        project: &str,
        zone: &str,
        request_id: Option<&str>,
    ) -> Option<String> {
        let r = request_id?;
        self.requests
            .get(&(project.into(), zone.into(), r.into()))
            .cloned()
    }
}

/// `{base}/compute/v1/projects/{p}/zones/{z}`.
pub(crate) fn zone_url(base: &str, project: &str, zone: &str) -> String {
    format!("{base}/compute/v1/projects/{project}/zones/{zone}")
}

/// The operation as `zoneOperations.get` renders it.
pub(crate) fn render_operation(base: &str, key: &Key, op: &Operation, now: Instant) -> Value {
    let (project, zone, name) = key;
    let zone_url = zone_url(base, project, zone);
    let done = now >= op.done_at;
    let mut v = json!({
        "kind": "compute#operation",
        "id": op.id.to_string(),
        "name": name,
        "zone": zone_url,
        "operationType": op.op_type,
        "targetLink": format!("{zone_url}/instances/{}", op.target),
        "targetId": op.target_id.to_string(),
        "status": if done { "DONE" } else { "RUNNING" },
        "user": "mockcloud@example.iam.gserviceaccount.com",
        "progress": if done { 100 } else { 0 },
        "insertTime": op.started,
        "startTime": op.started,
        "selfLink": format!("{zone_url}/operations/{name}"),
    });
    if done {
        v["endTime"] = json!(timestamp());
        if let Some(e) = &op.error {
            v["error"] = json!({"errors": [{"code": e.code, "message": e.message}]});
            v["httpErrorStatusCode"] = json!(e.http_status);
            v["httpErrorMessage"] = json!(e.http_message);
        }
    }
    v
}

/// The instance as `instances.get` renders it: the inserted body plus the output-only fields.
pub(crate) fn render_instance(base: &str, key: &Key, i: &Instance, now: Instant) -> Value {
    let (project, zone, name) = key;
    let zone_url = zone_url(base, project, zone);
    let mut v = i.resource.clone();
    v["kind"] = json!("compute#instance");
    v["id"] = json!(i.id.to_string());
    v["name"] = json!(name);
    v["creationTimestamp"] = json!(i.created);
    v["zone"] = json!(zone_url);
    v["machineType"] = json!(format!("{zone_url}/machineTypes/{}", i.machine_type));
    v["status"] = json!(i.status(now));
    v["cpuPlatform"] = json!(match i.series {
        "n2d" => "AMD Milan",
        "c3" | "a3" => "Intel Sapphire Rapids",
        _ => "Intel Broadwell",
    });
    v["selfLink"] = json!(format!("{zone_url}/instances/{name}"));
    v["labelFingerprint"] = json!("42WmSpB8rSM=");
    if let Some(msg) = &i.terminated {
        v["statusMessage"] = json!(msg);
    }
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("kind".into(), json!("compute#metadata"));
        m.insert("fingerprint".into(), json!("5OB6RVyM2dA="));
    }
    if let Some(nics) = v.get_mut("networkInterfaces").and_then(Value::as_array_mut) {
        for (n, nic) in nics.iter_mut().enumerate() {
            nic["kind"] = json!("compute#networkInterface");
            nic["name"] = json!(format!("nic{n}"));
            nic["networkIP"] = json!(format!("10.128.0.{}", 2 + i.id % 250));
        }
    }
    if let Some(disks) = v.get_mut("disks").and_then(Value::as_array_mut) {
        for (n, disk) in disks.iter_mut().enumerate() {
            let disk_name = if n == 0 {
                name.clone()
            } else {
                format!("{name}-{n}")
            };
            disk["kind"] = json!("compute#attachedDisk");
            disk["index"] = json!(n);
            disk["deviceName"] = json!(disk_name);
            disk["source"] = json!(format!("{zone_url}/disks/{disk_name}"));
            if let Some(o) = disk.as_object_mut() {
                o.remove("initializeParams");
            }
        }
    }
    v
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
}

/// Now as RFC 3339 (`2026-05-01T10:00:00.000-00:00`, GCE's style), from the civil-from-days
/// algorithm (Howard Hinnant's), to spare a date crate.
pub(crate) fn timestamp() -> String {
    let ms = unix_ms();
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}-00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}
