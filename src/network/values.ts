/**
 * Signed value records in the DHT (format: `protocols/values/`): creating them with a node's key,
 * and the DHT validator and selector that every node runs on records it stores or receives.
 *
 * @example
 * const bytes = await signValueRecord(privateKey, 'status', utf8('ready'), Date.now())
 * await dht.put(utf8(valueKey(peerId, 'status')), bytes)
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { InvalidValueRecordError } from '../../protocols/values/errors.ts'
import {
  decodeValueRecord,
  encodeValueRecord,
  parseValueKey,
  valueKey,
  valueSigningBytes,
  VALUE_RECORD_VERSION
} from '../../protocols/values/codec.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { SelectFn, ValidateFn } from '@libp2p/kad-dht'

export { InvalidValueRecordError }

export async function signValueRecord(
  privateKey: PrivateKey,
  name: string,
  value: Uint8Array,
  seq: number
): Promise<Uint8Array> {
  const peerId = peerIdFromString(privateKey.publicKey.toString()).toString()
  const key = valueKey(peerId, name)
  const sig = await privateKey.sign(valueSigningBytes(key, seq, value))
  return encodeValueRecord({ v: VALUE_RECORD_VERSION, seq, value, sig })
}

/** Decodes a record found under `key` and checks it is signed by the peer the key names. */
export async function verifyValueRecord(
  key: Uint8Array | string,
  bytes: Uint8Array
): Promise<{ peerId: string; name: string; seq: number; value: Uint8Array }> {
  const { peerId, name } = parseValueKey(key)
  const record = decodeValueRecord(bytes)
  let publicKey
  try {
    publicKey = peerIdFromString(peerId).publicKey
  } catch (err) {
    throw new InvalidValueRecordError(`key names an invalid peer id: ${(err as Error).message}`)
  }
  if (publicKey == null) throw new InvalidValueRecordError('key names a peer id without an inline public key')
  const keyText = valueKey(peerId, name)
  const ok = await publicKey.verify(valueSigningBytes(keyText, record.seq, record.value), record.sig)
  if (!ok) throw new InvalidValueRecordError('signature does not verify against the peer named in the key')
  return { peerId, name, seq: record.seq, value: record.value }
}

export const validateValueRecord: ValidateFn = async (key, value) => {
  await verifyValueRecord(key, value)
}

/** Picks the record with the highest seq; records that fail to decode never win. */
export const selectValueRecord: SelectFn = (_key, records) => {
  let best = 0
  let bestSeq = -1
  records.forEach((bytes, i) => {
    try {
      const seq = decodeValueRecord(bytes).seq
      if (seq > bestSeq) {
        best = i
        bestSeq = seq
      }
    } catch {}
  })
  return best
}
