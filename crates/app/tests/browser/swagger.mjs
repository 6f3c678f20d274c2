// Opens mall's Swagger UI in Debian's headless Chromium, lists the operations it shows, runs
// "Try it out" on GET /product/ranked, and saves a screenshot.
// Usage: node swagger.mjs <base URL> <screenshot path>. Prints one JSON line with what it saw.
import { chromium } from 'playwright-core';

const [base, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const external = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(base)) external.push(request.url());
  });
  await page.goto(`${base}/docs/`, { waitUntil: 'networkidle' });
  await page.waitForSelector('.opblock-summary-path', { timeout: 15000 });
  const operations = await page.$$eval('.opblock-summary', (blocks) => blocks.map((block) => {
    const method = block.querySelector('.opblock-summary-method')?.textContent?.trim();
    const path = block.querySelector('.opblock-summary-path')?.getAttribute('data-path');
    return `${method} ${path}`;
  }));

  const ranked = page.locator('#operations-catalog-ranked');
  await ranked.locator('.opblock-summary').click();
  await ranked.locator('.try-out__btn').click();
  await ranked.locator('.execute').click();
  const status = ranked.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor({ timeout: 15000 });
  const answer = await ranked.locator('.live-responses-table .response-col_description pre').first().textContent();
  await ranked.scrollIntoViewIfNeeded();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ operations, status: (await status.textContent()).trim(), answer, external }));
} finally {
  await browser.close();
}
