# authenticator-hygiene, aaguid-low-certification, attestation-none
#
# Every Authenticator written (CREATE or UPDATE, by anyone) has well-formed
# IDs, an allowed and unrevoked AAGUID, a validity span within the maximum key
# age, is device-bound unless synced passkeys are allowed, and does not
# register a credential that another Authenticator already holds.
package fidomesh.admission

import rego.v1

deny contains {
	"code": "authenticator-hygiene",
	"msg": concat("", ["Authenticator ", subject_name, ": ", problem]),
} if {
	input.request.kind.group == "fidomesh.io"
	input.request.kind.kind == "Authenticator"
	input.request.operation in {"CREATE", "UPDATE"}
	not hygiene_clean
	some problem in hygiene_problems
}

# The usual well-formed Authenticator in one rule body, so that the checks
# below (one rule body each) run only when something may be wrong. It
# proves that none of them holds; when it fails they decide.
hygiene_clean if {
	spec := input.request.object.spec
	settings := data.fidomesh.settings

	# credentialId: see credential_id_well_formed
	c := spec.credentialId
	is_string(c)
	trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == ""
	n := count(c)
	n >= 22
	n <= 1364
	last_characters := ["-_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "", "AQgw", "AEIMQUYcgkosw048"]
	contains(last_characters[n % 4], substring(c, n - 1, 1))

	# not registered yet
	not data.fidomesh.credentials[c]

	# aaguid: see aaguid_well_formed
	a := spec.aaguid
	is_string(a)
	strings.replace_n({"1": "0", "2": "0", "3": "0", "4": "0", "5": "0", "6": "0", "7": "0", "8": "0", "9": "0", "a": "0", "b": "0", "c": "0", "d": "0", "e": "0", "f": "0"}, a) == "00000000-0000-0000-0000-000000000000"

	# no allow-list, and a model not revoked
	settings.allowedAaguids == {}
	entry := data.fidomesh.mds[a]
	entry.revoked == false
	status := entry.status
	is_string(status)
	upper(status) != "REVOKED"

	# device-bound
	spec.attestation.backupEligible == false

	# notBefore and notAfter in the usual form (see valid_timestamp and
	# usual_timestamp; here both at once, the fields split apart), and a
	# positive span within the maximum key age
	not_before := spec.notBefore
	not_after := spec.notAfter
	is_string(not_before)
	is_string(not_after)
	both := concat("/", [not_before, not_after])
	strings.replace_n({"1": "0", "2": "0", "3": "0", "4": "0", "5": "0", "6": "0", "7": "0", "8": "0", "9": "0"}, both) == "0000-00-00T00:00:00Z/0000-00-00T00:00:00Z"
	f := split(strings.replace_n({"-": "/", "T": "/", ":": "/", "Z": ""}, both), "/")
	f[0] >= "1970"
	f[0] <= "2261"
	f[1] >= "01"
	f[1] <= "12"
	f[2] >= "01"
	f[2] <= "28"
	f[3] <= "23"
	f[4] <= "59"
	f[5] <= "59"
	f[6] >= "1970"
	f[6] <= "2261"
	f[7] >= "01"
	f[7] <= "12"
	f[8] >= "01"
	f[8] <= "28"
	f[9] <= "23"
	f[10] <= "59"
	f[11] <= "59"
	span := time.parse_rfc3339_ns(not_after) - time.parse_rfc3339_ns(not_before)
	span > 0
	max_age := settings.maxKeyAgeSeconds
	is_number(max_age)
	max_age > 0
	span <= max_age * 1000000000
}

# spec.aaguid, "" when absent (for messages and the allow-list)
new_aaguid := a if {
	a := input.request.object.spec.aaguid
	is_string(a)
} else := ""

# --- well-formed IDs --------------------------------------------------------

hygiene_problems contains "spec.credentialId must be the canonical, unpadded base64url encoding of 16 to 1023 bytes" if {
	not credential_id_well_formed
}

# Unpadded base64url of 16..1023 bytes: 22..1364 characters of the URL-safe
# alphabet, never 1 modulo 4, and canonical: the unused low bits of the last
# character are zero (after 2 characters of a group only A, Q, g or w may end
# it; after 3 only every fourth character of the alphabet).
credential_id_well_formed if {
	c := input.request.object.spec.credentialId
	is_string(c)
	trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == ""
	n := count(c) # exact: ASCII only, proven just above
	n >= 22
	n <= 1364
	last_characters := ["-_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "", "AQgw", "AEIMQUYcgkosw048"]
	contains(last_characters[n % 4], substring(c, n - 1, 1))
}

hygiene_problems contains "spec.aaguid must be a lowercase UUID" if not aaguid_well_formed

# 8-4-4-4-12 lowercase hex digits (every one of them becomes a 0)
aaguid_well_formed if {
	a := input.request.object.spec.aaguid
	is_string(a)
	strings.replace_n(hex_digits_to_zero, a) == "00000000-0000-0000-0000-000000000000"
}

digits_to_zero := {"1": "0", "2": "0", "3": "0", "4": "0", "5": "0", "6": "0", "7": "0", "8": "0", "9": "0"}

hex_digits_to_zero := {
	"1": "0", "2": "0", "3": "0", "4": "0", "5": "0", "6": "0", "7": "0", "8": "0", "9": "0",
	"a": "0", "b": "0", "c": "0", "d": "0", "e": "0", "f": "0",
}

# --- one Authenticator per credential ----------------------------------------

hygiene_problems contains concat("", ["the credential is already registered as Authenticator ", quote(name)]) if {
	c := input.request.object.spec.credentialId
	fp := data.fidomesh.credentials[c]
	is_string(c)
	c != ""
	is_string(fp)
	name := registered_name(fp)
	name != subject_name
}

registered_name(fp) := n if {
	n := data.fidomesh.authenticators[fp].name
	is_string(n)
} else := ""

# --- authenticator model ----------------------------------------------------

hygiene_problems contains concat("", ["authenticator model ", new_aaguid, " is not in the allowed AAGUIDs of the settings"]) if {
	allowed := data.fidomesh.settings.allowedAaguids
	is_object(allowed)
	count(allowed) > 0
	not allowed[new_aaguid] == true
}

hygiene_problems contains concat("", [
	"authenticator model ", a, " (",
	string_field(entry, "description"),
	") is revoked by the FIDO metadata service",
]) if {
	a := input.request.object.spec.aaguid
	entry := data.fidomesh.mds[a]
	entry.revoked == true
	is_string(a)
	a != ""
}

hygiene_problems contains concat("", [
	"authenticator model ", a, " (",
	string_field(entry, "description"),
	") is revoked by the FIDO metadata service",
]) if {
	a := input.request.object.spec.aaguid
	entry := data.fidomesh.mds[a]
	status := entry.status
	is_string(status)
	upper(status) == "REVOKED"
	is_string(a)
	a != ""
}

# --- device-bound -----------------------------------------------------------

hygiene_problems contains "the credential is backup-eligible (a synced passkey) and the settings require device-bound keys" if {
	input.request.object.spec.attestation.backupEligible == true
	not synced_passkeys_allowed
}

synced_passkeys_allowed if data.fidomesh.settings.allowSyncedPasskeys == true

# --- validity span ----------------------------------------------------------

hygiene_problems contains "spec.notBefore must be an RFC 3339 time such as 2027-03-01T00:00:00Z" if {
	input.request.object.spec.notBefore != null
	not not_before_valid
}

hygiene_problems contains "spec.notAfter must be an RFC 3339 time such as 2027-03-01T00:00:00Z" if {
	input.request.object.spec.notAfter != null
	not not_after_valid
}

not_before_valid if valid_timestamp(input.request.object.spec.notBefore)

not_after_valid if valid_timestamp(input.request.object.spec.notAfter)

validity_span_ns := span if {
	not_before_valid
	not_after_valid
	span := time.parse_rfc3339_ns(input.request.object.spec.notAfter) - time.parse_rfc3339_ns(input.request.object.spec.notBefore)
}

hygiene_problems contains "spec.notAfter must be later than spec.notBefore" if validity_span_ns <= 0

hygiene_problems contains "the validity span from spec.notBefore to spec.notAfter exceeds the maximum key age of the settings" if {
	validity_span_ns > max_key_age_seconds * 1000000000
}

# maxKeyAgeSeconds; DESIGN's default (180 days) when absent or not a positive number
max_key_age_seconds := n if {
	n := data.fidomesh.settings.maxKeyAgeSeconds
	is_number(n)
	n > 0
} else := 15552000

# RFC 3339 as both engines parse it alike: upper-case T and Z, years 1970 to
# 2261 (nanoseconds since the epoch fit 64 bits), real calendar days. A value
# outside this is refused here instead of being handed to
# time.parse_rfc3339_ns, which fails differently in OPA and regorus.
#
# The usual form (2027-03-01T00:00:00Z, days up to the 28th) is checked
# without a regex, which costs ten times a builtin call in regorus: every
# digit becomes 0 to check the shape, then each field is compared as a string.
valid_timestamp(t) if {
	is_string(t)
	strings.replace_n(digits_to_zero, t) == "0000-00-00T00:00:00Z"
	usual_timestamp(t)
} else if {
	# anything else: fractions, offsets, the 29th to the 31st, and every
	# malformed value
	is_string(t)
	regex.match(rfc3339_pattern, t)
	day_fits_month(t)
}

# t, of the form 0000-00-00T00:00:00Z (ASCII digits for the zeros), is a
# time of 1970 to 2261 on the 1st to the 28th of a month
usual_timestamp(t) if {
	date := substring(t, 0, 10)
	date >= "1970-01-01"
	date <= "2261-12-31"
	month := substring(t, 5, 2)
	month >= "01"
	month <= "12"
	day := substring(t, 8, 2)
	day >= "01"
	day <= "28"
	substring(t, 11, 2) <= "23"
	substring(t, 14, 1) <= "5"
	substring(t, 17, 1) <= "5"
}

rfc3339_pattern := `^(19[7-9][0-9]|2[01][0-9][0-9]|22[0-5][0-9]|226[01])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`

multiples_of_four := {
	"00", "04", "08", "12", "16", "20", "24", "28", "32", "36", "40", "44", "48",
	"52", "56", "60", "64", "68", "72", "76", "80", "84", "88", "92", "96",
}

months_of_31_days := {"01", "03", "05", "07", "08", "10", "12"}

leap_year(y) if {
	substring(y, 2, 2) != "00"
	substring(y, 2, 2) in multiples_of_four
}

leap_year(y) if {
	substring(y, 2, 2) == "00"
	substring(y, 0, 2) in multiples_of_four
}

day_fits_month(t) if substring(t, 8, 2) <= "28"

day_fits_month(t) if {
	substring(t, 8, 2) in {"29", "30"}
	substring(t, 5, 2) != "02"
}

day_fits_month(t) if {
	substring(t, 8, 2) == "31"
	substring(t, 5, 2) in months_of_31_days
}

day_fits_month(t) if {
	substring(t, 8, 2) == "29"
	substring(t, 5, 2) == "02"
	leap_year(substring(t, 0, 4))
}

# --- warnings ---------------------------------------------------------------

# certificationLevel: "L1", "L1plus", "L2", ... or the MDS status name
# ("FIDO_CERTIFIED_L2"); case does not matter.
aaguid_certified if {
	# as the webhook writes it
	a := input.request.object.spec.aaguid
	data.fidomesh.mds[a].certificationLevel in {"L2", "L2plus", "L3", "L3plus"}
	is_string(a)
} else if {
	a := input.request.object.spec.aaguid
	level := data.fidomesh.mds[a].certificationLevel
	is_string(level)
	trim_prefix(upper(level), "FIDO_CERTIFIED_") in {"L2", "L2PLUS", "L3", "L3PLUS"}
	is_string(a)
}

warn contains {
	"code": "aaguid-low-certification",
	"msg": concat("", [
		"Authenticator ", subject_name, ": authenticator model ", new_aaguid,
		" is not FIDO certified at level L2 or higher",
	]),
} if {
	input.request.operation == "CREATE"
	input.request.kind.kind == "Authenticator"
	input.request.kind.group == "fidomesh.io"
	not aaguid_certified
	aaguid_well_formed
}

warn contains {
	"code": "attestation-none",
	"msg": concat("", [
		"Authenticator ", subject_name,
		": attestation format none proves no hardware; this key will not count as hardware-backed",
	]),
} if {
	input.request.object.spec.attestation.format == "none"
	input.request.operation == "CREATE"
	input.request.kind.kind == "Authenticator"
	input.request.kind.group == "fidomesh.io"
}
