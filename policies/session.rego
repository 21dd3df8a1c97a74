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

deny contains {
	"code": "session-identity-guard",
	"msg": concat("", [
		subject_ref, " runs as ServiceAccount ", session_account,
		", the session identity of a registered authenticator; only its holder may create or change it",
	]),
} if {
	input.request.kind.kind in {
		"Pod", "ReplicationController", "Deployment", "StatefulSet",
		"DaemonSet", "ReplicaSet", "Job", "CronJob",
	}
	input.request.operation in {"CREATE", "UPDATE"}
	pod_spec_path
	object.get(input.request, "subResource", "") != "status"
	count(session_holders) > 0
	not session_holder_asks
	not is_controller
	not is_kube_workload_controller
}

# the path of the pod spec inside the object, for the kinds that have one
pod_spec_path := ["spec"] if {
	input.request.kind.kind == "Pod"
	request_group == ""
} else := ["spec", "template", "spec"] if {
	input.request.kind.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
	request_group == "apps"
} else := ["spec", "template", "spec"] if {
	input.request.kind.kind == "ReplicationController"
	request_group == ""
} else := ["spec", "template", "spec"] if {
	input.request.kind.kind == "Job"
	request_group == "batch"
} else := ["spec", "jobTemplate", "spec", "template", "spec"] if {
	input.request.kind.kind == "CronJob"
	request_group == "batch"
}

request_group := g if {
	g := input.request.kind.group
	is_string(g)
} else := ""

# the pod spec, {} when absent
pod_spec := s if {
	o := input.request.object
	is_object(o)
	s := object.get(o, pod_spec_path, {})
	is_object(s)
} else := {}

# the effective ServiceAccount: serviceAccountName, else the deprecated
# serviceAccount, else "default"
pod_service_account := n if {
	n := pod_spec.serviceAccountName
	is_string(n)
	n != ""
} else := n if {
	n := pod_spec.serviceAccount
	is_string(n)
	n != ""
} else := "default"

session_account := concat("/", [namespace, pod_service_account])

# fingerprint -> holder, for the Authenticators whose session identity this is
session_holders := h if {
	h := data.fidomesh.serviceAccounts[session_account]
	is_object(h)
} else := {}

session_holder_asks if {
	u := input.requester.username
	is_string(u)
	u != ""
	some holder in session_holders
	holder == u
}

is_kube_workload_controller if input.requester.username in {
	"system:serviceaccount:kube-system:deployment-controller",
	"system:serviceaccount:kube-system:replicaset-controller",
	"system:serviceaccount:kube-system:statefulset-controller",
	"system:serviceaccount:kube-system:daemon-set-controller",
	"system:serviceaccount:kube-system:job-controller",
	"system:serviceaccount:kube-system:cronjob-controller",
	"system:serviceaccount:kube-system:replication-controller",
	"system:kube-controller-manager",
}
