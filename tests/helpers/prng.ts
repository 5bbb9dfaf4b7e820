/** The tests' seeded PRNG is the load generator's (a randomized test is replayed from its printed seed). */
export { prng } from "../../scripts/prng.ts";
