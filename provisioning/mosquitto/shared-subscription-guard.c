/*
 * venue-gateway's shared-subscription guard for Mosquitto 2.x: a client may subscribe to a
 * shared subscription ($share/<group>/<filter>) only if its user name is listed in
 * plugin_opt_shared_subscribers. Every other check is left to the acl_file (MOSQ_ERR_PLUGIN_DEFER).
 *
 * Why: Mosquitto's acl_file never checks subscriptions (2.0's security_default.c grants every
 * SUBSCRIBE and checks only delivery), so a gateway certificate could join the collectors' group
 * $share/collectors/...; Mosquitto then hands that member its turn of the fleet's batches, refuses
 * the delivery by the ACL, and the batch waits for the gateway's re-send. Why not the
 * dynamic-security plugin: Debian 12's Mosquitto 2.0.11 has no %u/%c in its ACLs, so it would need
 * a role per gateway and every unit registered at the broker, and it rewrites its whole JSON file on
 * every change; the acl_file's per-gateway patterns stay as they are. See README.md beside this file.
 *
 * Build: provisioning/mosquitto/build-guard.sh (needs gcc, mosquitto-dev and libmosquitto-dev).
 * Use, per listener (per_listener_settings true), after the certificate options:
 *   plugin /usr/lib/mosquitto/vgw_shared_subscription_guard.so
 *   plugin_opt_shared_subscribers collector-1 collector-2
 */
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define SHARE_PREFIX "$share/"
#define OPTION "shared_subscribers"

struct guard {
	mosquitto_plugin_id_t *id;
	char *allowed; /* " name1 name2 " so a lookup is a strstr of " name " */
};

static int is_allowed(const struct guard *g, const char *username)
{
	size_t len;
	const char *at;

	if(username == NULL || g->allowed == NULL) return 0;
	len = strlen(username);
	if(len == 0 || strchr(username, ' ')) return 0;
	for(at = strstr(g->allowed, username); at; at = strstr(at + 1, username)){
		if(at[-1] == ' ' && at[len] == ' ') return 1;
	}
	return 0;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	const struct mosquitto_evt_acl_check *ed = event_data;
	const struct guard *g = userdata;
	const char *username;

	(void)event;
	if(ed->access != MOSQ_ACL_SUBSCRIBE) return MOSQ_ERR_PLUGIN_DEFER;
	if(strncmp(ed->topic, SHARE_PREFIX, strlen(SHARE_PREFIX)) != 0) return MOSQ_ERR_PLUGIN_DEFER;
	username = mosquitto_client_username(ed->client);
	if(is_allowed(g, username)) return MOSQ_ERR_PLUGIN_DEFER;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "vgw shared-subscription guard: refused %s to %s (not in " OPTION ")",
			ed->topic, username ? username : "(no user name)");
	return MOSQ_ERR_ACL_DENIED;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	int i;

	for(i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options, int option_count)
{
	struct guard *g;
	size_t size = 3;
	int i;

	g = calloc(1, sizeof(*g));
	if(g == NULL) return MOSQ_ERR_NOMEM;
	g->id = identifier;
	for(i = 0; i < option_count; i++){
		if(!strcmp(options[i].key, OPTION)) size += strlen(options[i].value) + 1;
	}
	g->allowed = calloc(1, size);
	if(g->allowed == NULL){
		free(g);
		return MOSQ_ERR_NOMEM;
	}
	strcat(g->allowed, " ");
	for(i = 0; i < option_count; i++){
		if(!strcmp(options[i].key, OPTION)){
			strcat(g->allowed, options[i].value);
			strcat(g->allowed, " ");
		}
	}
	/* Tabs count as separators too: the option is a space- or tab-separated list. */
	for(char *c = g->allowed; *c; c++) if(*c == '\t') *c = ' ';
	*userdata = g;
	mosquitto_log_printf(MOSQ_LOG_INFO, "vgw shared-subscription guard: shared subscriptions only for [%s]", g->allowed);
	return mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, g);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	struct guard *g = userdata;

	(void)options;
	(void)option_count;
	if(g == NULL) return MOSQ_ERR_SUCCESS;
	mosquitto_callback_unregister(g->id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
	free(g->allowed);
	free(g);
	return MOSQ_ERR_SUCCESS;
}
