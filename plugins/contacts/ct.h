/*
 * ct.h: the contacts plugin's private header.
 *
 *   contacts.c  the plugin table and the handlers of every /contacts route
 *   codec/      the contact's JSON codec (ct_codec.h, its manual): bodies
 *               read into contacts and patches, values checked, answers
 *               written; a library of its own, shared with contactctl
 *
 * The codec knows nothing of the plugin API; this header is where the two
 * meet, and holds what only the plugin needs.
 */
#ifndef CT_H
#define CT_H

#include "cd_plugin.h"
#include "cs.h"
#include "ct_codec.h"

/* Room for the list of searchable fields an invalid searchby answer names
 * (ct_searchby_names): every field name and its separator, with margin. */
#define CT_SEARCHBY_LIST_BYTES 256

#endif
