import { strict as assert } from 'node:assert'
import { AgentTokens } from '../../node/api/agent-tokens.ts'
import type { PrincipalId } from '../../src/crypto/principal.ts'

describe('agent tokens', () => {
  it('never mints a token that begins with "-", which a command line would read as a flag', () => {
    const tokens = new AgentTokens()
    const minted: string[] = []
    // 2,000 tokens: without the rule, about 31 would begin with "-" (1 in 64)
    for (let a = 0; a < 200; a++)
      for (let i = 0; i < 10; i++) minted.push(tokens.mint(`agent-${a}` as PrincipalId).token)
    assert.deepEqual(
      minted.filter(t => t.startsWith('-')),
      []
    )
    for (const t of minted) assert.ok(tokens.verify(t) != null, 'every minted token verifies')
  })
})
