// The product form's price policy: show the tiers only for a tiered price, the ε rate and exponent only
// for a price by privacy loss, the floor and ceiling only for a price by utility, and the preview's example
// fields (the answer's ε, a trial's uplift and its value) only for the policies that price them. Without
// this script every field stays visible, and the server ignores the ones the chosen policy does not use.
(function () {
  "use strict";
  var choice = document.getElementById("product-price_policy");
  if (!choice) return;
  var usedBy = { "product-price_tiers": "tiered", "product-price_epsilon_rate": "noisy",
                 "product-price_epsilon_exponent": "noisy", "product-price_floor": "utility",
                 "product-price_ceiling": "utility", "example-example_epsilon": "noisy",
                 "example-example_uplift": "utility", "example-example_value": "utility" };

  function update() {
    Object.keys(usedBy).forEach(function (id) {
      var input = document.getElementById(id);
      var field = input && input.closest(".field");
      if (field) field.hidden = choice.value !== usedBy[id];
    });
  }
  choice.addEventListener("change", update);
  update();
})();
