# no-escalation
#
# A requester may bind a role only if the active authenticator they used holds
# that role (data.fidomesh.heldRoles), or they are in an admin group. Changing
# an existing binding also needs the role it granted before. MeshRoles define
# what a role reaches, so only admins create or change them.
package fidomesh.admission

import rego.v1

# "<namespace>/<role>" of the binding's roleRef ("" when absent); roleRef
# names a MeshRole in the binding's own namespace.
bound_roles contains concat("/", [namespace, new_role_name]) if input.request.operation in {"CREATE", "UPDATE"}

bound_roles contains concat("/", [namespace, old_role_name]) if input.request.operation == "UPDATE"

new_role_name := n if {
	n := input.request.object.spec.roleRef.name
	is_string(n)
} else := ""

old_role_name := n if {
	n := input.request.oldObject.spec.roleRef.name
	is_string(n)
} else := ""

holds_role(role) if {
	key_active
	held := data.fidomesh.heldRoles[input.requester.authenticator.fingerprint]
	held[role] == true
}

deny contains {
	"code": "no-escalation",
	"msg": concat("", [
		"MeshRoleBinding ", namespace, "/", subject_name,
		": binding role ", role,
		" needs an active authenticator that holds it, or an admin group",
	]),
} if {
	input.request.kind.group == "fidomesh.io"
	input.request.kind.kind == "MeshRoleBinding"
	some role in bound_roles
	not holds_role(role)
	not is_admin
	not is_controller
}

deny contains {
	"code": "no-escalation",
	"msg": concat("", [
		"MeshRole ", namespace, "/", subject_name,
		": only an admin group may create or change roles",
	]),
} if {
	input.request.kind.group == "fidomesh.io"
	input.request.kind.kind == "MeshRole"
	input.request.operation in {"CREATE", "UPDATE"}
	not is_admin
	not is_controller
}
