# self-registration-only
#
# An Authenticator is created only by its holder using that very credential,
# or by an admin group. Once registered, only its holder (or an admin) may
# change or delete it, and its credential ID and holder never change except by
# an admin.
package fidomesh.admission

import rego.v1

registration_rule_applies if {
	policy_changing
	is_fidomesh_kind("Authenticator")
	not is_admin
	not is_controller
	not is_kube_cleanup
}

new_spec := get_obj(new_object, "spec")

old_spec := get_obj(old_object, "spec")

registers_own_credential if {
	username != ""
	username == get_str(new_spec, "holder")
	credential_id != ""
	credential_id == get_str(new_spec, "credentialId")
}

deny contains {
	"code": "self-registration-only",
	"msg": concat("", [
		"Authenticator ", subject_name,
		" may be created only by its holder ", quote(get_str(new_spec, "holder")),
		" authenticating with that very credential, or by an admin",
	]),
} if {
	registration_rule_applies
	operation == "CREATE"
	not registers_own_credential
}

# UPDATE: the requester holds the key before and after the change
deny contains {
	"code": "self-registration-only",
	"msg": concat("", [
		"Authenticator ", subject_name,
		" may be changed only by its holder ", quote(get_str(old_spec, "holder")),
		" or by an admin",
	]),
} if {
	registration_rule_applies
	operation == "UPDATE"
	not updates_own_authenticator
}

updates_own_authenticator if {
	username != ""
	username == get_str(old_spec, "holder")
	username == get_str(new_spec, "holder")
}

deny contains {
	"code": "self-registration-only",
	"msg": concat("", [
		"Authenticator ", subject_name,
		": the credential ID of a registered key cannot change; register a new Authenticator",
	]),
} if {
	registration_rule_applies
	operation == "UPDATE"
	get_str(new_spec, "credentialId") != get_str(old_spec, "credentialId")
}

deny contains {
	"code": "self-registration-only",
	"msg": concat("", [
		"Authenticator ", subject_name,
		" may be deleted only by its holder ", quote(get_str(old_spec, "holder")),
		" or by an admin",
	]),
} if {
	registration_rule_applies
	operation == "DELETE"
	not deletes_own_authenticator
}

deletes_own_authenticator if {
	username != ""
	username == get_str(old_spec, "holder")
}
