#!/bin/sh
# Kafka ACLs for tocsin's topics: each stage its own principal, and each topic written by the stages that
# must write it and no other. The threat model they are half of is in the README ("The ledger's threat
# model"): the ledger's trust rests on the router's signatures and on the checkpoints topic below, which
# only the router may write; these ACLs keep everyone else from appending to the ledger at all.
#
#   KAFKA_HOME=/opt/kafka BOOTSTRAP=kafka:9093 ADMIN_CONFIG=admin.properties deploy/kafka/acls.sh
#   DRY_RUN=1 deploy/kafka/acls.sh          # print the kafka-acls.sh commands instead of running them
#
# Needs a cluster with authentication (SASL or mTLS) and an authorizer (KRaft:
# authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer), with
# allow.everyone.if.no.acl.found=false, so that what is not granted here is refused. ADMIN_CONFIG is the
# client config of a super user (super.users); topic creation, deletion and configuration stay with it:
# no tocsin principal may delete, re-create or reconfigure a topic (which is how a ledger would be cut
# or rewritten). The principals are User:tocsin-<stage>; set PREFIX to name them otherwise.
set -eu

KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
BOOTSTRAP=${BOOTSTRAP:-localhost:9092}
ADMIN_CONFIG=${ADMIN_CONFIG:-}
PREFIX=${PREFIX:-User:tocsin-}
DRY_RUN=${DRY_RUN:-}

acl() {
    set -- "$KAFKA_HOME/bin/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" \
        ${ADMIN_CONFIG:+--command-config "$ADMIN_CONFIG"} --add --force "$@"
    if [ -n "$DRY_RUN" ]; then echo "$@"; else "$@"; fi
}

# allow STAGE OPERATION... -- TOPIC...
allow() {
    stage=$1; shift
    ops=""
    while [ "$1" != "--" ]; do ops="$ops --operation $1"; shift; done
    shift
    for topic in "$@"; do
        # shellcheck disable=SC2086
        acl --allow-principal "$PREFIX$stage" $ops --topic "$topic"
    done
}

INCIDENTS=tocsin.incidents.raw.v1
NEWS=tocsin.news.raw.v1
OBSERVATIONS=tocsin.observations.v1
SIGNALS=tocsin.signals.v1
ALERTS=tocsin.alerts.v1
NOTIFICATIONS=tocsin.notifications.v1
RESPONSES=tocsin.responses.v1
LEDGER=tocsin.ledger.v1
CHECKPOINTS=tocsin.ledger.checkpoints.v1
DEAD_LETTERS=tocsin.deadletter.v1
CONNECTOR_STATE=tocsin.connector.state.v1

# Connectors: write the raw topics and their dead letters in transactions, with their cursors.
allow connectors Write Describe -- "$INCIDENTS" "$NEWS" "$DEAD_LETTERS"
allow connectors Read Write Describe -- "$CONNECTOR_STATE"
acl --allow-principal "${PREFIX}connectors" --operation Write --operation Describe \
    --transactional-id tocsin.connector. --resource-pattern-type prefixed
acl --allow-principal "${PREFIX}connectors" --operation IdempotentWrite --cluster

# The HTTP intake: monitors' reports onto the incidents topic.
allow intake Write Describe -- "$INCIDENTS"
acl --allow-principal "${PREFIX}intake" --operation IdempotentWrite --cluster

# The indicator pipeline: raw records in, observations and signals out.
allow indicators Read Describe -- "$INCIDENTS" "$NEWS"
allow indicators Read Write Describe -- "$OBSERVATIONS" "$SIGNALS"
allow indicators Write Describe -- "$DEAD_LETTERS"
acl --allow-principal "${PREFIX}indicators" --operation Read --group tocsin.indicators. \
    --resource-pattern-type prefixed

# The alert pipeline: signals in, alerts out (it reads the alerts back to restore the firing ones).
allow alerts Read Describe -- "$SIGNALS"
allow alerts Read Write Describe -- "$ALERTS"
allow alerts Write Describe -- "$DEAD_LETTERS"
acl --allow-principal "${PREFIX}alerts" --operation Read --group tocsin.alerts. --resource-pattern-type prefixed

# The router: the one writer of the ledger and of its checkpoints (it reads both back at start), and of
# the notifications and responses it publishes. Its signing key is not a Kafka matter: it is the
# router's file (TOCSIN_LEDGER_KEY), never on a topic.
allow router Read Describe -- "$ALERTS"
allow router Read Write Describe -- "$LEDGER" "$CHECKPOINTS"
allow router Write Describe -- "$NOTIFICATIONS" "$RESPONSES"
acl --allow-principal "${PREFIX}router" --operation IdempotentWrite --cluster
# Routers of an --ha-group (router/leader.py): the group they elect the active one in (name it
# tocsin-router...), and the ledger writer's transactional id (tocsin-router-<group>), which fences a
# replaced router.
acl --allow-principal "${PREFIX}router" --operation Read --group tocsin-router --resource-pattern-type prefixed
acl --allow-principal "${PREFIX}router" --operation Write --operation Describe \
    --transactional-id tocsin-router- --resource-pattern-type prefixed

# Whoever verifies the ledger (an auditor, a monitoring job): read, nothing else.
allow ledger-verifier Read Describe -- "$LEDGER" "$CHECKPOINTS"

# Downstream services (dashboards, the duty bearers' own systems): what tocsin publishes, read only.
allow downstream Read Describe -- "$ALERTS" "$NOTIFICATIONS" "$RESPONSES" "$SIGNALS"
acl --allow-principal "${PREFIX}downstream" --operation Read --group tocsin.downstream. \
    --resource-pattern-type prefixed
