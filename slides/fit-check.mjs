// fit-check.mjs DECK.html... - does every slide's content fit its frame?
//
// Opens each deck rendered by Marp with the bare template (every slide laid out, one under the
// other) in headless Chromium, and for every slide measures what it shows: any element that
// reaches into the footer (or, on a slide without one, into the bottom margin), past the
// right edge, or that clips its own content (a code block or a table cell whose text is wider
// or taller than its box). Prints one line per problem, naming the deck, the slide number and
// its heading; exits 1 if there is any, 0 if every slide fits.
//
// Chromium: CHROME_PATH, as for Marp. Run it through `make -C slides fit` (make test does).
import puppeteer from 'puppeteer-core';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const decks = process.argv.slice(2);
if (decks.length === 0) {
    console.error('usage: node fit-check.mjs DECK.html...');
    process.exit(2);
}
const browser = await puppeteer.launch({
    executablePath: process.env.CHROME_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run'],
});
let problems = 0, slides = 0;
try {
    for (const deck of decks) {
        const page = await browser.newPage();
        await page.setViewport({ width: 1280, height: 720 });
        await page.goto(pathToFileURL(path.resolve(deck)).href, { waitUntil: 'load' });
        await page.evaluate(() => document.fonts.ready);
        const found = await page.evaluate(() => {
            const out = [];
            const sections = [...document.querySelectorAll('svg[data-marpit-svg] > foreignObject > section')];
            sections.forEach((s, i) => {
                const box = s.getBoundingClientRect();
                const scale = box.width / 1280; // the slide's own pixels, whatever the zoom
                const footer = s.querySelector(':scope > footer');
                const fbox = footer && footer.textContent.trim() ? footer.getBoundingClientRect() : null;
                const floor = fbox ? fbox.top : box.bottom - 24 * scale; // the bottom margin
                const title = (s.querySelector('h1, h2') || {}).textContent || '(no heading)';
                const seen = new Set();
                for (const el of s.querySelectorAll('*')) {
                    /* the footer itself, and the inside of a drawing (an inline svg) */
                    if (el.closest('header, footer') || el.closest('svg') !== s.closest('svg'))
                        continue;
                    const r = el.getBoundingClientRect();
                    if (r.width === 0 || r.height === 0)
                        continue;
                    const what = el.tagName.toLowerCase() +
                        (el.textContent ? ' "' + el.textContent.trim().slice(0, 40) + '"' : '');
                    let why = null;
                    if (r.bottom > floor + 1)
                        why = `reaches ${Math.round((r.bottom - floor) / scale)} px into the ${fbox ? 'footer' : 'bottom margin'}`;
                    else if (r.right > box.right + 1)
                        why = `runs ${Math.round((r.right - box.right) / scale)} px past the right edge`;
                    else if (/^(pre|td|th)$/i.test(el.tagName) &&
                             (el.scrollWidth > el.clientWidth + 2 || el.scrollHeight > el.clientHeight + 2))
                        why = 'is wider or taller than its box (its text is cut off)';
                    if (why && !seen.has(why)) {
                        seen.add(why);
                        out.push({ slide: i + 1, title: title.trim(), what, why });
                    }
                }
            });
            return { count: sections.length, out };
        });
        slides += found.count;
        for (const p of found.out) {
            console.log(`${path.basename(deck)}: slide ${p.slide} (${p.title}): ${p.what} ${p.why}`);
            problems++;
        }
        await page.close();
    }
} finally {
    await browser.close();
}
if (problems > 0) {
    console.log(`fit-check: ${problems} problem(s) in ${slides} slides of ${decks.length} deck(s)`);
    process.exit(1);
}
console.log(`fit-check: all ${slides} slides of ${decks.length} deck(s) fit their frame`);
