/**
 * ISO 4217 currency codes, which `order_completed.currency` must be: three capital letters alone
 * let `XYZ` or a typo such as `EUS` into a user's order history as if it were a currency.
 * Checked at the HTTP edge only (engine/ingest.ts): an event already in the log with another code
 * is still handled, never dead-lettered by a replay after an upgrade.
 */

/**
 * ISO 4217 list one (checked against pycountry 26.2.16's, 2026-12-05: the same but XAD, added here), funds and precious
 * metals included, plus the codes withdrawn since 2020 (ANG, BGN, CUC, HRK, SLL, ZWL: orders in them still come).
 */
const CODES = [
  "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD",
  "CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP",
  "GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY",
  "KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD",
  "MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR",
  "PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL",
  "THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST",
  "XAD XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL",
].join(" ").split(" ");

const ISO_4217 = new Set(CODES);

/** Whether `code` is an ISO 4217 currency code (upper case, as the event schema requires). */
export function isIso4217(code: string): boolean {
  return ISO_4217.has(code);
}
