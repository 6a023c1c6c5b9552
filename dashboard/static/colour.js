// Bar labels readable on every state's colour: black or white, whichever
// contrasts more (WCAG 2 relative luminance), as producer/chart.py picks for the PNG.

function channel(value) {
  const c = value / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
}

export function luminance(hex) {
  const [r, g, b] = hex.replace("#", "").match(/../g).map(pair => channel(parseInt(pair, 16)));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

export function contrast(a, b) {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
}

export function labelColour(face) {
  return contrast(face, "#000000") >= contrast(face, "#ffffff") ? "#000000" : "#ffffff";
}
