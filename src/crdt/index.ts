/**
 * The CRDT registry: every replicated data type by its CrdtName, so a log can be opened with
 * `crdtTypes[name]`, plus re-exports of the types, their mutators, the limits and the errors.
 *
 * @example
 * import { crdtTypes, orSet } from './crdt/index.ts'
 * const type = crdtTypes['or-set']
 * const state = type.empty()
 * type.merge(state, orSet.add(state, { replica, hlc }, 'x'))
 */
import { gCounter } from './g-counter.ts'
import { lwwRegister } from './lww-register.ts'
import { mvRegister } from './mv-register.ts'
import { opLog } from './op-log.ts'
import { orMap } from './or-map.ts'
import { orSet } from './or-set.ts'
import { pnCounter } from './pn-counter.ts'
import { text } from './text.ts'
import type { GCounterType } from './g-counter.ts'
import type { LwwRegisterType } from './lww-register.ts'
import type { MvRegisterType } from './mv-register.ts'
import type { OpLogType } from './op-log.ts'
import type { OrMapType } from './or-map.ts'
import type { OrSetType } from './or-set.ts'
import type { PnCounterType } from './pn-counter.ts'
import type { TextType } from './text.ts'
import type { CrdtName, CrdtType } from './types.ts'

export interface CrdtTypes {
  'g-counter': GCounterType
  'pn-counter': PnCounterType
  'or-set': OrSetType
  'lww-register': LwwRegisterType
  'mv-register': MvRegisterType
  'or-map': OrMapType
  text: TextType
  'op-log': OpLogType
}

/** A type seen without its state, delta and value types, e.g. by a log that only stores and merges. */
export type AnyCrdtType = CrdtType<unknown, unknown, unknown>

export const crdtTypes: CrdtTypes = {
  'g-counter': gCounter,
  'pn-counter': pnCounter,
  'or-set': orSet,
  'lww-register': lwwRegister,
  'mv-register': mvRegister,
  'or-map': orMap,
  text,
  'op-log': opLog
} satisfies { [name in CrdtName]: AnyCrdtType }

export { gCounter, lwwRegister, mvRegister, opLog, orMap, orSet, pnCounter, text }
export { compareOpLogEntries, MAX_ACTOR_LENGTH, opLogEntries, OpLogState } from './op-log.ts'
export { Causal, CausalContext, DotFun, DotMap, dotKey, dotSet, joinStores, parseDotKey } from './causal.ts'
export {
  DEFAULT_LIMITS,
  MAX_DEPTH,
  MAX_ENTRIES,
  MAX_KEY_LENGTH,
  MAX_UPDATE_BYTES,
  MAX_VALUE_BYTES,
  resolveLimits
} from './codec.ts'
export { CounterOverflowError, InvalidDeltaError, InvalidPathError, InvalidValueError } from './errors.ts'
export { FIELD_KINDS } from './or-map.ts'
export type { Dot, DotSet, DotStore } from './causal.ts'
export type { GCounterState, GCounterType } from './g-counter.ts'
export type { LwwEntry, LwwRegisterState, LwwRegisterType } from './lww-register.ts'
export type { MvRegisterState, MvRegisterType } from './mv-register.ts'
export type { CounterTotals, FieldKind, LwwField, MapPath, MapStore, OrMapState, OrMapType } from './or-map.ts'
export type { OpLogDelta, OpLogEntry, OpLogType } from './op-log.ts'
export type { OrSetState, OrSetType, SetStore } from './or-set.ts'
export type { PnCounterState, PnCounterType } from './pn-counter.ts'
export type { TextType } from './text.ts'
export type { CrdtLimits, CrdtName, CrdtType, MutationContext } from './types.ts'
