# no-escalation
#
# A requester may bind a role only if the active authenticator they used holds
# that role (data.fidomesh.heldRoles), or they are in an admin group. Changing
# an existing binding also needs the role it granted before. MeshRoles define
# what a role reaches, so only admins create or change them.
package fidomesh.admission

import rego.v1

escalation_rule_applies if {
	policy_changing
	not is_admin
	not is_controller
}

# "<namespace>/<role>" of a binding object; roleRef names a MeshRole in the
# binding's own namespace.
binding_role(o) := concat("/", [namespace, get_str(o, ["spec", "roleRef", "name"])])

holds_role(role) if {
	key_active
	get_obj(held_roles, fingerprint)[role] == true
}

bound_roles contains role if {
	operation in {"CREATE", "UPDATE"}
	role := binding_role(new_object)
}

bound_roles contains role if {
	operation == "UPDATE"
	role := binding_role(old_object)
}

deny contains {
	"code": "no-escalation",
	"msg": concat("", [
		"MeshRoleBinding ", namespace, "/", subject_name,
		": binding role ", role,
		" needs an active authenticator that holds it, or an admin group",
	]),
} if {
	escalation_rule_applies
	is_fidomesh_kind("MeshRoleBinding")
	some role in bound_roles
	not holds_role(role)
}

deny contains {
	"code": "no-escalation",
	"msg": concat("", [
		"MeshRole ", namespace, "/", subject_name,
		": only an admin group may create or change roles",
	]),
} if {
	escalation_rule_applies
	is_fidomesh_kind("MeshRole")
	operation in {"CREATE", "UPDATE"}
}
