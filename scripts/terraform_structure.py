#!/usr/bin/env python3
"""Structural assertions on terraform/{aws,gcp,azure} (docs/terraform.md), with python-hcl2.

No terraform binary exists here, so these rules are checked on the parsed HCL, never on a plan:
  - no inbound rule anywhere (security groups, NSGs, GCP firewalls);
  - every outbound allow is TCP 443 only, and where the cloud's default allows all egress (GCP,
    Azure) an explicit deny-all sits below it; every Azure subnet has an NSG;
  - every taggable resource carries the owner tag/label (local.tags / default_labels, whose owner
    entry cannot be overridden);
  - IAM is least privilege: no wildcard actions, AWS launch/terminate conditioned on the owner
    tag, instance type and IMDSv2, GCP mutating roles only under a condition, Azure custom roles
    scoped to a resource group;
  - outputs equal terraform/config-keys.yaml; every variable has a type and description, and
    every required one a validation;
  - every inline `#checkov:skip=ID:reason` has a reason, and no checkov config skips silently.

  terraform_structure.py DIR              check DIR/{aws,gcp,azure}; exit 1 on any failure
  terraform_structure.py --self-test DIR  inject each violation into a copy; each must be caught
"""

import re
import shutil
import sys
import tempfile
from pathlib import Path

import hcl2
import yaml

CLOUDS = ("aws", "gcp", "azure")

# Resource types whose provider offers no tags/labels argument. Every other resource must carry
# the owner tag, so a new resource type fails until it is tagged or listed here.
UNTAGGABLE = {
    "aws": {"aws_route_table_association", "aws_iam_role_policy"},
    # GCP: none of these take labels; the provider's default_labels covers any that ever does.
    "gcp": {
        "google_compute_network", "google_compute_subnetwork", "google_compute_router",
        "google_compute_router_nat", "google_compute_firewall", "google_service_account",
        "google_project_iam_custom_role", "google_project_iam_member",
        "google_compute_image_iam_member",
    },
    "azure": {
        "azurerm_subnet", "azurerm_subnet_network_security_group_association",
        "azurerm_nat_gateway_public_ip_association", "azurerm_subnet_nat_gateway_association",
        "azurerm_role_definition", "azurerm_role_assignment", "azurerm_policy_definition",
        "azurerm_resource_group_policy_assignment", "azurerm_network_security_rule",
    },
}
OWNER = {  # the locals entry holding the owner tag, and its key/value variables
    "aws": ("tags", "owner_tag_key", "owner_tag"),
    "gcp": ("labels", "owner_label_key", "owner_label"),
    "azure": ("tags", "owner_tag_key", "owner_tag"),
}
SKIP_RE = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def unquote(x):
    """python-hcl2 keeps the quotes of string literals and marks blocks; drop both."""
    if isinstance(x, dict):
        return {unquote(k): unquote(v) for k, v in x.items() if k != "__is_block__"}
    if isinstance(x, list):
        return [unquote(v) for v in x]
    if isinstance(x, str) and len(x) >= 2 and x[0] == x[-1] == '"':
        return x[1:-1]
    return x


class Module:
    def __init__(self, path: Path):
        self.path, self.text = path, {}
        self.resources, self.data, self.providers = [], [], []
        self.variables, self.outputs, self.locals = {}, {}, {}
        for f in sorted(path.glob("*.tf")):
            self.text[f.name] = f.read_text()
            with f.open() as fh:
                doc = unquote(hcl2.load(fh))
            for kind, into in (("resource", self.resources), ("data", self.data)):
                for block in doc.get(kind, []):
                    for rtype, named in block.items():
                        into += [(rtype, name, body) for name, body in named.items()]
            for block in doc.get("provider", []):
                self.providers += list(block.items())
            for block in doc.get("variable", []):
                self.variables.update(block)
            for block in doc.get("output", []):
                self.outputs.update(block)
            for block in doc.get("locals", []):
                self.locals.update(block)

    def of(self, *types):
        return [(t, n, b) for t, n, b in self.resources if t in types]


def blocks(body, key):
    v = body.get(key) or []
    return v if isinstance(v, list) else [v]


def is_443(v):
    return str(v) == "443"


# ---------------------------------------------------------------- network rules


def check_network(cloud, m):
    fails, seen = [], 0
    if cloud == "aws":
        for t, n, b in m.of("aws_security_group", "aws_default_security_group"):
            seen += 1
            if t == "aws_security_group" and "ingress" not in b:
                fails.append(f"{t}.{n}: set ingress = [] so inbound rules added out of band are removed")
            if blocks(b, "ingress"):
                fails.append(f"{t}.{n}: has an ingress rule")
            egress = blocks(b, "egress")
            if t == "aws_security_group" and not egress:
                fails.append(f"{t}.{n}: no explicit egress rule")
            if t == "aws_default_security_group" and egress:
                fails.append(f"{t}.{n}: the default group must keep no rules")
            for r in egress if t == "aws_security_group" else []:
                if not (r.get("protocol") == "tcp" and is_443(r.get("from_port")) and is_443(r.get("to_port"))):
                    fails.append(f"{t}.{n}: egress rule is not TCP 443 only")
        for t, n, b in m.of("aws_security_group_rule", "aws_vpc_security_group_ingress_rule",
                            "aws_vpc_security_group_egress_rule", "aws_network_acl_rule"):
            seen += 1
            ingress = t.endswith("ingress_rule") or b.get("type") == "ingress" or (
                t == "aws_network_acl_rule" and str(b.get("egress")).lower() != "true")
            proto = b.get("protocol", b.get("ip_protocol"))
            if ingress:
                fails.append(f"{t}.{n}: is an ingress rule")
            elif not (proto == "tcp" and is_443(b.get("from_port")) and is_443(b.get("to_port"))):
                fails.append(f"{t}.{n}: egress rule is not TCP 443 only")
    elif cloud == "gcp":
        allows, denies = [], []
        for t, n, b in m.of("google_compute_firewall"):
            seen += 1
            direction = b.get("direction", "INGRESS")  # GCP's default direction is INGRESS
            prio = int(b.get("priority", 1000))
            if direction == "INGRESS" and blocks(b, "allow"):
                fails.append(f"{t}.{n}: allows ingress")
            if direction == "EGRESS":
                for a in blocks(b, "allow"):
                    allows.append(prio)
                    if not (a.get("protocol") == "tcp" and [str(p) for p in a.get("ports", [])] == ["443"]):
                        fails.append(f"{t}.{n}: egress allow is not TCP 443 only")
                if any(d.get("protocol") == "all" for d in blocks(b, "deny")) and \
                        "0.0.0.0/0" in b.get("destination_ranges", []):
                    denies.append(prio)
        for t, n, b in m.of("google_compute_firewall_policy_rule", "google_compute_network_firewall_policy_rule"):
            seen += 1
            if b.get("direction") == "INGRESS" and b.get("action") == "allow":
                fails.append(f"{t}.{n}: allows ingress")
        if m.of("google_compute_network") and not any(d > max(allows, default=-1) for d in denies):
            fails.append("no EGRESS deny-all below the 443 allow: GCP's implied rule allows all egress")
    else:
        nsgs = m.of("azurerm_network_security_group")
        rules = [(f"{t}.{n}", r) for t, n, b in nsgs for r in blocks(b, "security_rule")]
        rules += [(f"{t}.{n}", b) for t, n, b in m.of("azurerm_network_security_rule")]
        seen = len(rules)
        for where, r in rules:
            if r.get("access") != "Allow":
                continue
            if r.get("direction") == "Inbound":
                fails.append(f"{where}: rule {r.get('name')} allows inbound traffic")
            elif not (r.get("protocol") == "Tcp" and is_443(r.get("destination_port_range"))
                      and all(is_443(p) for p in r.get("destination_port_ranges", []))):
                fails.append(f"{where}: outbound allow {r.get('name')} is not TCP 443 only")
        # Azure's built-in rules (65000+) allow VNet traffic both ways and Internet outbound.
        for t, n, b in nsgs:
            for way in ("Inbound", "Outbound"):
                rs = [r for r in blocks(b, "security_rule") if r.get("direction") == way]
                allow = max((int(r["priority"]) for r in rs if r.get("access") == "Allow"), default=0)
                if not any(r.get("access") == "Deny" and r.get("protocol") == "*" and int(r["priority"]) > allow
                           and r.get("destination_port_range") == "*" for r in rs):
                    fails.append(f"{t}.{n}: no {way} deny-all below its allows (Azure's defaults allow traffic)")
        assoc = " ".join(b.get("subnet_id", "") for _, _, b in
                         m.of("azurerm_subnet_network_security_group_association"))
        for t, n, b in m.of("azurerm_subnet"):
            if f"azurerm_subnet.{n}.id" not in assoc:
                fails.append(f"{t}.{n}: has no NSG association")
    return f"no inbound rule; outbound TCP 443 only ({seen} groups/rules)", fails


# ---------------------------------------------------------------- tags


def check_tags(cloud, m):
    fails = []
    local, key, value = OWNER[cloud]
    expr = str(m.locals.get(local, ""))
    # The owner entry must be the last argument of merge(), so nothing can override it.
    if not re.search(rf"\{{\s*\(var\.{key}\)\s*=\s*var\.{value}\s*\}}\s*\)\}}$", expr):
        fails.append(f"local.{local} must end with {{ (var.{key}) = var.{value} }} (owner tag last)")
    attr = "labels" if cloud == "gcp" else "tags"
    checked = 0
    for t, n, b in m.resources:
        if t in UNTAGGABLE[cloud] and attr not in b:
            continue
        checked += 1
        if f"local.{local}" not in str(b.get(attr, "")):
            fails.append(f"{t}.{n}: missing the owner tag ({attr} must include local.{local})")
    if cloud == "gcp":
        google = [b for name, b in m.providers if name == "google"]
        if not google or any(f"local.{local}" not in str(b.get("default_labels", "")) for b in google):
            fails.append("provider google: default_labels must be local.labels (the owner label)")
    return f"owner tag on every taggable resource ({checked} tagged resources)", fails


# ---------------------------------------------------------------- IAM


def check_iam(cloud, m):
    fails = []
    if cloud == "aws":
        stmts = [(n, s) for t, n, b in m.data if t == "aws_iam_policy_document" for s in blocks(b, "statement")]
        for n, s in stmts:
            sid = f"{n}/{s.get('sid', '?')}"
            actions, res = s.get("actions", []), s.get("resources", [])
            conds = {c.get("variable"): c.get("values") for c in blocks(s, "condition")}
            if any("*" in a for a in actions) or s.get("not_actions"):
                fails.append(f"{sid}: wildcard or NotAction in actions {actions}")
            if "*" in res and not all(a.startswith("ec2:Describe") for a in actions):
                fails.append(f"{sid}: Resource * only for Describe actions")
            if "ec2:RunInstances" in actions and any(r.endswith(":instance/*") for r in res):
                for need in ("aws:RequestTag/${var.owner_tag_key}", "ec2:InstanceType", "ec2:MetadataHttpTokens"):
                    if need not in conds:
                        fails.append(f"{sid}: RunInstances on instances lacks condition {need}")
            if "ec2:TerminateInstances" in actions and "ec2:ResourceTag/${var.owner_tag_key}" not in conds:
                fails.append(f"{sid}: TerminateInstances lacks condition ec2:ResourceTag/<owner>")
            if "ec2:CreateTags" in actions and conds.get("ec2:CreateAction") != ["RunInstances"]:
                fails.append(f"{sid}: CreateTags must be limited to ec2:CreateAction = RunInstances")
        return f"least-privilege IAM ({len(stmts)} statements)", fails
    if cloud == "gcp":
        roles = {n: b.get("permissions", []) for t, n, b in m.of("google_project_iam_custom_role")}
        members = m.of("google_project_iam_member", "google_project_iam_binding")
        for t, n, b in members:
            role = str(b.get("role", ""))
            if role.startswith("roles/"):
                fails.append(f"{t}.{n}: predefined project-wide role {role}")
            perms = next((p for r, p in roles.items() if f"google_project_iam_custom_role.{r}." in role), [])
            mutating = [p for p in perms if not re.search(r"\.(get|list)$", p)]
            if mutating and not blocks(b, "condition"):
                fails.append(f"{t}.{n}: grants {mutating} without an IAM condition")
        return f"least-privilege IAM ({len(members)} project bindings)", fails
    defs = m.of("azurerm_role_definition")
    for t, n, b in defs:
        for p in blocks(b, "permissions"):
            if any("*" in a for a in p.get("actions", []) + p.get("data_actions", [])):
                fails.append(f"{t}.{n}: wildcard action")
        scopes = b.get("assignable_scopes") or ["none"]
        if any("azurerm_resource_group." not in str(s) for s in scopes):
            fails.append(f"{t}.{n}: assignable_scopes must be resource groups of this module")
    for t, n, b in m.of("azurerm_role_assignment"):
        if b.get("role_definition_name") in ("Owner", "Contributor", "User Access Administrator"):
            fails.append(f"{t}.{n}: broad built-in role {b['role_definition_name']}")
    return f"least-privilege roles ({len(defs)} custom roles)", fails


# ---------------------------------------------------------------- outputs, variables, skips


def check_outputs(cloud, m, keys):
    want, have = set(keys.get(cloud) or []), set(m.outputs)
    fails = [f"output {o} is not in config-keys.yaml" for o in sorted(have - want)]
    fails += [f"config-keys.yaml key {k} has no output" for k in sorted(want - have)]
    fails += [f"output {o}: no description" for o, b in m.outputs.items() if not b.get("description")]
    return f"outputs == config-keys.yaml {cloud} ({len(want)} keys)", fails


def check_variables(cloud, m):
    fails = []
    for v, b in m.variables.items():
        if not b.get("description") or not b.get("type"):
            fails.append(f"variable {v}: needs a type and a description")
        if "default" not in b and not blocks(b, "validation"):
            fails.append(f"variable {v}: required but has no validation")
    return f"variables typed, described, required ones validated ({len(m.variables)})", fails


def check_skips(cloud, m):
    fails, n = [], 0
    for f, text in m.text.items():
        for match in SKIP_RE.finditer(text):
            n += 1
            if len((match.group(2) or "").strip()) < 20:
                fails.append(f"{f}: checkov:skip={match.group(1)} has no written reason")
    for cfg in list(m.path.glob(".checkov.y*ml")) + list(m.path.parent.glob(".checkov.y*ml")):
        fails.append(f"{cfg.name}: skip checks inline with a reason, not in a checkov config")
    return f"checkov skips carry reasons ({n} inline)", fails


def run(root: Path, verbose=True):
    keys = yaml.safe_load((root / "config-keys.yaml").read_text())
    failures = []
    for cloud in CLOUDS:
        m = Module(root / cloud)
        for check in (check_network, check_tags, check_iam, check_variables, check_skips):
            failures += report(cloud, *check(cloud, m), verbose)
        failures += report(cloud, *check_outputs(cloud, m, keys), verbose)
    return failures


def report(cloud, what, fails, verbose):
    if verbose:
        print(f"{'FAIL' if fails else 'ok  '} {cloud:5} {what}")
        for f in fails:
            print(f"       {f}")
    return [f"{cloud}: {f}" for f in fails]


# ---------------------------------------------------------------- self-test

# (name, cloud, file, old text or None to append, new text, expected fragment of a failure)
VIOLATIONS = [
    ("aws ingress rule resource", "aws", "network.tf", None,
     'resource "aws_vpc_security_group_ingress_rule" "ssh" {\n  security_group_id = aws_security_group.jobs.id\n'
     '  ip_protocol = "tcp"\n  from_port = 22\n  to_port = 22\n  cidr_ipv4 = "0.0.0.0/0"\n  tags = local.tags\n}\n',
     "is an ingress rule"),
    ("aws inline ingress", "aws", "network.tf", "ingress = []",
     'ingress {\n    protocol = "tcp"\n    from_port = 22\n    to_port = 22\n    cidr_blocks = ["0.0.0.0/0"]\n  }',
     "has an ingress rule"),
    ("aws ingress left unmanaged", "aws", "network.tf", "ingress = []", "", "set ingress = []"),
    ("aws egress port 22", "aws", "network.tf", "from_port   = 443\n    to_port     = 443",
     "from_port   = 22\n    to_port     = 22", "not TCP 443 only"),
    ("aws untagged subnet", "aws", "network.tf", None,
     'resource "aws_subnet" "extra" {\n  vpc_id = aws_vpc.jobs.id\n  cidr_block = "10.80.9.0/24"\n}\n',
     "aws_subnet.extra: missing the owner tag"),
    ("aws owner tag overridable", "aws", "versions.tf", "merge(var.extra_tags, { (var.owner_tag_key) = var.owner_tag })",
     "merge({ (var.owner_tag_key) = var.owner_tag }, var.extra_tags)", "owner tag last"),
    ("aws RunInstances without type condition", "aws", "iam.tf", 'variable = "ec2:InstanceType"',
     'variable = "ec2:Region"', "lacks condition ec2:InstanceType"),
    ("aws RunInstances without IMDSv2 condition", "aws", "iam.tf", '"ec2:MetadataHttpTokens"', '"ec2:Tenancy"',
     "lacks condition ec2:MetadataHttpTokens"),
    ("aws Terminate without owner condition", "aws", "iam.tf", '"ec2:ResourceTag/${var.owner_tag_key}"',
     '"aws:RequestedRegion"', "TerminateInstances lacks"),
    ("aws CreateTags anytime", "aws", "iam.tf", '"ec2:CreateAction"', '"aws:RequestedRegion"', "CreateTags must be limited"),
    ("aws wildcard action", "aws", "iam.tf", '"ec2:DescribeInstanceStatus"', '"ec2:*"', "wildcard"),
    ("aws extra output", "aws", "outputs.tf", None, 'output "vpc_id" {\n  description = "x"\n  value = aws_vpc.jobs.id\n}\n',
     "output vpc_id is not in config-keys.yaml"),
    ("aws missing output", "aws", "outputs.tf", 'output "role_arn" {', 'output "role" {', "key role_arn has no output"),
    ("aws required variable without validation", "aws", "variables.tf", None,
     'variable "name" {\n  type = string\n  description = "x"\n}\n', "required but has no validation"),
    ("aws skip without reason", "aws", "network.tf", "#checkov:skip=CKV2_AWS_5:", "#checkov:skip=CKV2_AWS_5\n  # ",
     "no written reason"),
    ("gcp ingress allow", "gcp", "network.tf", None,
     'resource "google_compute_firewall" "ssh" {\n  name = "ssh"\n  network = google_compute_network.jobs.id\n'
     '  direction = "INGRESS"\n  source_ranges = ["0.0.0.0/0"]\n  allow {\n    protocol = "tcp"\n    ports = ["22"]\n  }\n}\n',
     "allows ingress"),
    ("gcp ingress by default direction", "gcp", "network.tf", None,
     'resource "google_compute_firewall" "any" {\n  name = "any"\n  network = google_compute_network.jobs.id\n'
     '  allow {\n    protocol = "all"\n  }\n}\n', "google_compute_firewall.any: allows ingress"),
    ("gcp egress port 80", "gcp", "network.tf", 'ports    = ["443"]', 'ports    = ["80"]', "not TCP 443 only"),
    ("gcp no egress deny-all", "gcp", "network.tf", 'direction          = "EGRESS"\n  priority           = 65534',
     'direction          = "EGRESS"\n  priority           = 900', "no EGRESS deny-all"),
    ("gcp no default owner label", "gcp", "versions.tf", "default_labels = local.labels",
     "default_labels = var.extra_labels", "default_labels must be local.labels"),
    ("gcp launcher without condition", "gcp", "iam.tf", "  condition {\n    title       = \"cdvm-job-vms-only\"",
     "  not_a_condition {\n    title       = \"cdvm-job-vms-only\"", "without an IAM condition"),
    ("gcp project-wide predefined role", "gcp", "iam.tf", "role    = google_project_iam_custom_role.observer.name",
     'role    = "roles/compute.instanceAdmin.v1"', "predefined project-wide role"),
    ("azure inbound allow", "azure", "network.tf", None,
     'resource "azurerm_network_security_rule" "ssh" {\n  name = "ssh"\n  priority = 200\n  direction = "Inbound"\n'
     '  access = "Allow"\n  protocol = "Tcp"\n  source_port_range = "*"\n  destination_port_range = "22"\n'
     '  source_address_prefix = "*"\n  destination_address_prefix = "*"\n  resource_group_name = "x"\n'
     '  network_security_group_name = azurerm_network_security_group.jobs.name\n}\n', "allows inbound traffic"),
    ("azure outbound port 80", "azure", "network.tf", 'destination_port_range     = "443"',
     'destination_port_range     = "80"', "not TCP 443 only"),
    ("azure no outbound deny-all", "azure", "network.tf", '"deny-all-out"\n    priority                   = 4096',
     '"deny-all-out"\n    priority                   = 99', "no Outbound deny-all"),
    ("azure no inbound deny-all", "azure", "network.tf",
     '"deny-all-in"\n    priority                   = 4096\n    direction                  = "Inbound"',
     '"deny-all-in"\n    priority                   = 4096\n    direction                  = "Outbound"', "no Inbound deny-all"),
    ("azure subnet without NSG", "azure", "network.tf", None,
     'resource "azurerm_subnet" "open" {\n  name = "open"\n  resource_group_name = "x"\n  virtual_network_name = "y"\n'
     '  address_prefixes = ["10.82.9.0/24"]\n}\n', "azurerm_subnet.open: has no NSG association"),
    ("azure untagged public IP", "azure", "network.tf", None,
     'resource "azurerm_public_ip" "extra" {\n  name = "x"\n  resource_group_name = "x"\n  location = "x"\n'
     '  allocation_method = "Static"\n}\n', "azurerm_public_ip.extra: missing the owner tag"),
    ("azure wildcard role action", "azure", "identity.tf", '"Microsoft.Compute/virtualMachines/write",',
     '"Microsoft.Compute/*",', "wildcard action"),
    ("azure subscription-wide role", "azure", "identity.tf", "assignable_scopes = [azurerm_resource_group.jobs.id]",
     'assignable_scopes = ["/subscriptions/${var.subscription_id}"]', "assignable_scopes must be resource groups"),
    ("azure Contributor assignment", "azure", "identity.tf", 'role_definition_name = "Reader"',
     'role_definition_name = "Contributor"', "broad built-in role"),
]


def self_test(root: Path):
    print("self-test: the unchanged modules must pass")
    with tempfile.TemporaryDirectory() as tmp:
        if run(root, verbose=False):
            print("self-test: the real modules fail; fix them first")
            return 1
        bad = 0
        for name, cloud, fname, old, new, expect in VIOLATIONS:
            copy = Path(tmp) / name.replace(" ", "-")
            shutil.copytree(root, copy)
            target = copy / cloud / fname
            text = target.read_text()
            if old is None:
                text += "\n" + new
            elif text.count(old) != 1:
                print(f"BROKEN {name}: the text to replace occurs {text.count(old)} times in {cloud}/{fname}")
                bad += 1
                continue
            else:
                text = text.replace(old, new)
            target.write_text(text)
            failures = run(copy, verbose=False)
            hit = [f for f in failures if expect in f]
            print(f"{'caught' if hit else 'MISSED'} {name}: {hit[0] if hit else failures or 'no failure reported'}")
            bad += not hit
        print(f"self-test: {len(VIOLATIONS) - bad} of {len(VIOLATIONS)} injected violations caught")
        return 1 if bad else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--self-test":
        return self_test(Path(argv[2]))
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    failures = run(Path(argv[1]))
    print(f"terraform structure: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
