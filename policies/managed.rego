# managed-objects
#
# Objects labelled app.kubernetes.io/managed-by: fidomesh (before or after the
# change) are written only by fidomesh's own identity, the controller
# (settings.controllerIdentity). Anyone else creating, changing or deleting
# one, or adding or removing the label, is refused. Kubernetes' own cleanup
# deletes (namespace deletion, garbage collection) are let through.
package fidomesh.admission

import rego.v1

deny contains managed_object_denial if {
	input.request.object.metadata.labels["app.kubernetes.io/managed-by"] == "fidomesh"
}

deny contains managed_object_denial if {
	input.request.oldObject.metadata.labels["app.kubernetes.io/managed-by"] == "fidomesh"
}

managed_object_denial := {
	"code": "managed-objects",
	"msg": concat("", [
		subject_ref,
		" is managed by fidomesh (label app.kubernetes.io/managed-by: fidomesh) and changes only through ",
		quote(controller_identity),
		": change the MeshRole or MeshRoleBinding it comes from instead",
	]),
} if {
	input.request.operation in {"CREATE", "UPDATE", "DELETE"}
	not is_controller
	not is_kube_cleanup
}

controller_identity := s if {
	s := data.fidomesh.settings.controllerIdentity
	is_string(s)
} else := ""
