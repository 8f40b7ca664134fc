//! ARM's provisioning state and power state, as a [`VmState`].

use cdvm_provider_api::VmState;

use crate::models::VirtualMachineView;

/// The state of a VM read with `$expand=instanceView`.
pub fn vm_state(vm: &VirtualMachineView) -> VmState {
    let provisioning = vm.properties.provisioning_state.as_deref().unwrap_or("");
    let statuses = vm
        .properties
        .instance_view
        .as_ref()
        .map(|v| v.statuses.as_slice())
        .unwrap_or_default();
    let power = statuses
        .iter()
        .find_map(|s| s.code.strip_prefix("PowerState/").map(|p| (p, s)));
    let exited = |detail: String| VmState::Exited { detail };
    match (provisioning, power) {
        ("Failed", _) => {
            let why = statuses
                .iter()
                .find(|s| s.code.starts_with("ProvisioningState/"))
                .and_then(|s| s.display_status.clone())
                .unwrap_or_else(|| "Provisioning failed".into());
            exited(format!("provisioning failed: {why}"))
        }
        ("Deleting", _) => exited("VM is being deleted".into()),
        (_, Some(("running", _))) => VmState::Running,
        (_, Some((p @ ("stopping" | "stopped" | "deallocating" | "deallocated"), s))) => exited(
            s.display_status
                .clone()
                .unwrap_or_else(|| format!("PowerState/{p}")),
        ),
        // Creating, Updating, PowerState/starting, or no power state yet.
        _ => VmState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(provisioning: &str, power: Option<&str>) -> VirtualMachineView {
        let statuses: Vec<serde_json::Value> = power
            .map(|p| serde_json::json!({"code": format!("PowerState/{p}"), "displayStatus": format!("VM {p}")}))
            .into_iter()
            .collect();
        serde_json::from_value(serde_json::json!({
            "name": "cdvm-x",
            "properties": {
                "provisioningState": provisioning,
                "instanceView": {"statuses": statuses}
            }
        }))
        .expect("view")
    }

    #[test]
    fn arm_states_map_to_vm_states() {
        assert_eq!(vm_state(&vm("Creating", None)), VmState::Pending);
        assert_eq!(
            vm_state(&vm("Creating", Some("starting"))),
            VmState::Pending
        );
        assert_eq!(
            vm_state(&vm("Succeeded", Some("running"))),
            VmState::Running
        );
        assert_eq!(
            vm_state(&vm("Succeeded", Some("stopped"))),
            VmState::Exited {
                detail: "VM stopped".into()
            }
        );
        assert!(matches!(
            vm_state(&vm("Succeeded", Some("deallocated"))),
            VmState::Exited { .. }
        ));
        assert!(
            matches!(vm_state(&vm("Failed", None)), VmState::Exited { detail } if detail.contains("provisioning failed"))
        );
        assert!(matches!(
            vm_state(&vm("Deleting", Some("running"))),
            VmState::Exited { .. }
        ));
    }
}
