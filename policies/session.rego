# session-identity-guard
#
# A Pod, or a workload whose pod template makes Pods, that runs as the
# ServiceAccount of an Authenticator (its session identity,
# data.fidomesh.serviceAccounts["<namespace>/<name>"]) is created or changed
# only by that Authenticator's holder, or by the controller identity. The
# built-in workload controllers create Pods (and ReplicaSets, Jobs) from
# templates that already passed this rule, so they are let through.
package fidomesh.admission

import rego.v1

# group -> kind -> path of the pod spec inside the object
pod_spec_paths := {
	"": {
		"Pod": ["spec"],
		"ReplicationController": ["spec", "template", "spec"],
	},
	"apps": {
		"Deployment": ["spec", "template", "spec"],
		"StatefulSet": ["spec", "template", "spec"],
		"DaemonSet": ["spec", "template", "spec"],
		"ReplicaSet": ["spec", "template", "spec"],
	},
	"batch": {
		"Job": ["spec", "template", "spec"],
		"CronJob": ["spec", "jobTemplate", "spec", "template", "spec"],
	},
}

kube_workload_controllers := {
	"system:serviceaccount:kube-system:deployment-controller",
	"system:serviceaccount:kube-system:replicaset-controller",
	"system:serviceaccount:kube-system:statefulset-controller",
	"system:serviceaccount:kube-system:daemon-set-controller",
	"system:serviceaccount:kube-system:job-controller",
	"system:serviceaccount:kube-system:cronjob-controller",
	"system:serviceaccount:kube-system:replication-controller",
	"system:kube-controller-manager",
}

pod_spec_path := p if {
	p := object.get(object.get(pod_spec_paths, request_group, {}), request_kind, null)
	is_array(p)
}

pod_spec := get_obj(new_object, pod_spec_path)

# the effective ServiceAccount: serviceAccountName, else the deprecated
# serviceAccount, else "default"
pod_service_account := n if {
	n := get_str(pod_spec, "serviceAccountName")
	n != ""
}

pod_service_account := n if {
	get_str(pod_spec, "serviceAccountName") == ""
	n := get_str(pod_spec, "serviceAccount")
	n != ""
}

pod_service_account := "default" if {
	get_str(pod_spec, "serviceAccountName") == ""
	get_str(pod_spec, "serviceAccount") == ""
}

session_account := concat("/", [namespace, pod_service_account])

# fingerprint -> holder, for the Authenticators whose session identity this is
session_holders := get_obj(service_accounts, session_account)

session_holder_asks if {
	username != ""
	some holder in session_holders
	holder == username
}

session_rule_applies if {
	operation in {"CREATE", "UPDATE"}
	sub_resource != "status"
	pod_spec_path
	count(session_holders) > 0
	not is_controller
	not username in kube_workload_controllers
}

deny contains {
	"code": "session-identity-guard",
	"msg": concat("", [
		subject_ref, " runs as ServiceAccount ", session_account,
		", the session identity of a registered authenticator; only its holder may create or change it",
	]),
} if {
	session_rule_applies
	not session_holder_asks
}
