//! What the emulated Resource Manager holds, and how resources read back.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use cdvm_provider_api::VmId;
use rand::Rng;
use serde_json::{json, Value};

/// How a provisioning operation ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It worked.
    Succeeded,
    /// It failed with this ARM error.
    Failed {
        /// ARM error code.
        code: String,
        /// ARM message.
        message: String,
    },
}

/// A virtual machine.
#[derive(Debug)]
pub struct Vm {
    pub id: String,
    pub name: String,
    pub location: String,
    pub tags: Value,
    /// The request's properties, `userData` left out (ARM returns it only on request).
    pub properties: Value,
    pub size: String,
    pub admin: Option<String>,
    pub vm_id: String,
    pub ready_at: Instant,
    pub outcome: Outcome,
    pub deleting_until: Option<Instant>,
    /// The booted guest, if any.
    pub guest: Option<VmId>,
    /// The guest powered off by itself.
    pub stopped: bool,
    /// NIC keys, and whether each goes with the VM.
    pub nics: Vec<(String, bool)>,
}

/// A network interface.
#[derive(Debug)]
pub struct Nic {
    pub id: String,
    pub name: String,
    pub location: String,
    pub tags: Value,
    pub properties: Value,
    /// Key of the VM it is attached to.
    pub attached_to: Option<String>,
    pub deleting_until: Option<Instant>,
}

/// An `Azure-AsyncOperation` status resource.
#[derive(Debug)]
pub struct Op {
    pub done_at: Instant,
    pub outcome: Outcome,
}

/// Everything, keyed by lowercased resource id (ARM ids are case-insensitive).
#[derive(Debug, Default)]
pub struct Store {
    pub vms: BTreeMap<String, Vm>,
    pub nics: BTreeMap<String, Nic>,
    pub ops: HashMap<String, Op>,
}

/// A random GUID-shaped id.
pub fn guid() -> String {
    let b: [u8; 16] = rand::thread_rng().gen();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Store {
    /// Drops resources whose deletion has completed.
    pub fn reap(&mut self, now: Instant) {
        let done = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        self.vms.retain(|_, v| !done(v.deleting_until));
        self.nics.retain(|_, n| !done(n.deleting_until));
        for nic in self.nics.values_mut() {
            if nic
                .attached_to
                .as_ref()
                .is_some_and(|vm| !self.vms.contains_key(vm))
            {
                nic.attached_to = None;
            }
        }
    }

    /// A new operation; its id.
    pub fn new_op(&mut self, done_at: Instant, outcome: Outcome) -> String {
        let id = guid();
        self.ops.insert(id.clone(), Op { done_at, outcome });
        id
    }
}

fn error_json(code: &str, message: &str) -> Value {
    json!({"code": code, "message": message})
}

impl Op {
    /// The status resource as ARM serves it.
    pub fn view(&self, id: &str, now: Instant) -> Value {
        match (&self.outcome, now >= self.done_at) {
            (_, false) => json!({"name": id, "status": "InProgress"}),
            (Outcome::Succeeded, true) => json!({"name": id, "status": "Succeeded"}),
            (Outcome::Failed { code, message }, true) => {
                json!({"name": id, "status": "Failed", "error": error_json(code, message)})
            }
        }
    }
}

impl Vm {
    /// `Creating`, `Succeeded`, `Failed` or `Deleting`.
    pub fn provisioning_state(&self, now: Instant) -> &'static str {
        match (&self.deleting_until, now >= self.ready_at, &self.outcome) {
            (Some(_), _, _) => "Deleting",
            (None, false, _) => "Creating",
            (None, true, Outcome::Succeeded) => "Succeeded",
            (None, true, Outcome::Failed { .. }) => "Failed",
        }
    }

    /// The VM as `GET` returns it; with the instance view if asked.
    pub fn view(&self, now: Instant, instance_view: bool) -> Value {
        let state = self.provisioning_state(now);
        let mut properties = self.properties.clone();
        if let Some(p) = properties.as_object_mut() {
            p.insert("provisioningState".into(), state.into());
            p.insert("vmId".into(), self.vm_id.clone().into());
            if instance_view {
                p.insert("instanceView".into(), self.instance_view(state));
            }
        }
        json!({
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Compute/virtualMachines",
            "location": self.location,
            "tags": self.tags,
            "properties": properties,
        })
    }

    fn instance_view(&self, state: &str) -> Value {
        let status = |code: &str, display: &str| json!({"code": code, "displayStatus": display});
        let mut statuses = Vec::new();
        match (state, &self.outcome) {
            ("Failed", Outcome::Failed { code, message }) => statuses.push(json!({
                "code": format!("ProvisioningState/failed/{code}"),
                "level": "Error",
                "displayStatus": "Provisioning failed",
                "message": message,
            })),
            _ => statuses.push(status(
                &format!("ProvisioningState/{}", state.to_ascii_lowercase()),
                &format!("Provisioning {}", state.to_ascii_lowercase()),
            )),
        }
        match state {
            "Creating" => statuses.push(status("PowerState/starting", "VM starting")),
            "Deleting" => statuses.push(status("PowerState/deallocating", "VM deallocating")),
            "Succeeded" if self.stopped => {
                statuses.push(status("PowerState/stopped", "VM stopped"))
            }
            "Succeeded" => statuses.push(status("PowerState/running", "VM running")),
            _ => {}
        }
        json!({"computerName": self.name, "statuses": statuses})
    }
}

impl Nic {
    /// The NIC as `GET` returns it.
    pub fn view(&self) -> Value {
        let mut properties = self.properties.clone();
        if let Some(p) = properties.as_object_mut() {
            let state = if self.deleting_until.is_some() {
                "Deleting"
            } else {
                "Succeeded"
            };
            p.insert("provisioningState".into(), state.into());
            if let Some(vm) = &self.attached_to {
                p.insert("virtualMachine".into(), json!({"id": vm}));
            }
        }
        json!({
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Network/networkInterfaces",
            "location": self.location,
            "tags": self.tags,
            "properties": properties,
        })
    }
}
