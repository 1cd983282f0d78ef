/*
 * libfinevent: umbrella header.  Include this one; the module headers it
 * pulls in document each call.
 */
#ifndef FINEVENT_FINEVENT_H
#define FINEVENT_FINEVENT_H

#define FE_VERSION_MAJOR 0
#define FE_VERSION_MINOR 1
#define FE_VERSION_PATCH 0

#include "error.h"
#include "reason.h"
#include "event.h"
#include "bus.h"
#include "clock.h"
#include "hist.h"
#include "retry.h"
#include "breaker.h"
#include "throttle.h"
#include "trading.h"
#include "dlq.h"
#include "gateway.h"
#include "idem.h"
#include "journal.h"
#include "audit.h"
#include "trace.h"
#include "metrics.h"
#include "log.h"
#include "saga.h"
#include "compliance.h"
#include "recon.h"

#endif /* FINEVENT_FINEVENT_H */
